-- One row per benefit definition the generator knows: Omneo-shaped templates with periods,
-- use limits, claim windows and conditions, codes, and what the background data does with
-- them (columns starting with `_`, never exported). Limits that depend on how often a
-- definition was issued or redeemed are filled in by generate_benefit_definitions.sql.
-- $as_of: the night the data leads up to.
-- _weight: share of the background benefit instances (0: only planted anomalies use it).
-- _min_age_days/_max_age_days: how long before as_of its instances were issued.
-- _instance_prefix: per-instance codes (FS-1000123); null: instances carry no code.
-- _allocated: total_allocations is set (issued so far plus some headroom).
-- _global_cap: max_global_redemptions is set above what was redeemed (flash sales: fixed).
SELECT id::BIGINT AS id, handle, name, period::BIGINT AS period, max_redemptions::BIGINT AS max_redemptions,
       max_global_redemptions::BIGINT AS max_global_redemptions,
       is_published, is_archived, is_assignable, is_claimable, is_reclaimable,
       $as_of + to_days(claim_start_days) AS claim_period_start_at,
       $as_of + to_days(claim_end_days) AS claim_period_end_at,
       claim_condition,
       $as_of + to_days(end_days) AS end_at,
       NULL::BIGINT AS total_allocations, NULL::BIGINT AS total_allocations_remaining,
       redeem_code_pos, redeem_code_online, string_split(tags, ',') AS tags,
       _weight, _min_age_days, _max_age_days, _instance_prefix, _allocated, _global_cap,
       'Australia/Melbourne' AS _zone
FROM (VALUES
    (101, 'first-spend', 'First Spend Discount', 30, 1, NULL, true, false, true, false, false,
     NULL, NULL, NULL, NULL, 'FIRSTSPEND', 'FIRSTSPEND-WEB', 'welcome', 16, 0.5, 400, 'FS', false, false),
    (102, 'birthday-gift', 'Birthday Gift', 31, 1, NULL, true, false, true, false, true,
     NULL, NULL, NULL, NULL, 'BDAY', 'BDAY-WEB', 'birthday', 12, 0.5, 365, 'BD', true, false),
    (103, 'free-shipping', 'Free Shipping', NULL, NULL, NULL, true, false, true, false, true,
     NULL, NULL, NULL, 220, NULL, 'FREESHIP', 'shipping,online', 10, 1, 300, NULL, false, false),
    (104, 'coffee-card', 'Coffee Card: 5 Free Coffees', 90, 5, NULL, true, false, true, false, true,
     NULL, NULL, NULL, NULL, NULL, NULL, 'cafe', 8, 0.5, 300, 'CF', false, false),
    (105, '10-off-demo', '10%OFFDEMO', 14, 1, NULL, true, false, true, true, true,
     -45, 40, '{"in": [{"var": "tier_handle"}, ["silver", "gold"]]}', NULL, '10OFFDEMO', '10OFFDEMO-WEB',
     'promo', 6, 0.5, 44, 'TD', false, true),
    (106, 'vip-lounge', 'VIP Lounge Pass', 7, 2, NULL, true, true, true, false, true,
     NULL, NULL, NULL, NULL, 'VIPLOUNGE', NULL, 'vip', 2, 200, 600, 'VL', false, false),
    (107, 'welcome-gift', 'Welcome Gift', 60, 1, NULL, true, false, true, false, false,
     NULL, NULL, NULL, NULL, NULL, NULL, 'welcome', 10, 0.5, 500, 'WG', false, false),
    (108, 'double-points', 'Double Points Day', 1, 1, NULL, true, false, true, false, true,
     NULL, NULL, NULL, NULL, NULL, NULL, 'points', 5, 0.5, 200, NULL, false, false),
    (109, 'gold-free-alterations', 'Free Alterations (Gold)', 365, 3, NULL, true, false, true, false, true,
     NULL, NULL, '{"in": [{"var": "tier.handle"}, ["gold", "platinum"]]}', NULL, NULL, NULL,
     'gold,service', 3, 1, 400, 'FA', false, false),
    (110, 'anniversary-20', '$20 Anniversary Voucher', 30, 1, NULL, true, false, true, false, true,
     NULL, NULL, NULL, NULL, 'ANNIV20', NULL, 'anniversary', 5, 0.5, 400, 'AV', false, false),
    (111, 'limited-drop', 'Limited Edition Early Access', 14, 1, NULL, true, false, true, false, false,
     NULL, NULL, NULL, NULL, 'DROP-EARLY', NULL, 'drop', 2, 0.5, 60, 'LD', true, true),
    (112, 'app-exclusive', 'App Exclusive 15% Off', 21, 1, NULL, true, false, true, false, true,
     NULL, NULL, '{"in": ["app", {"var": "flattened_tags"}]}', NULL, NULL, 'APP15', 'app,online',
     5, 0.5, 300, 'AX', false, false),
    (113, 'staff-discount', 'Staff Discount', NULL, NULL, NULL, true, false, false, false, true,
     NULL, NULL, NULL, NULL, NULL, NULL, 'staff', 1, 30, 900, NULL, false, false),
    (114, 'spring-sale-2025', 'Spring Sale 2025', 30, 1, NULL, true, true, true, false, true,
     NULL, NULL, NULL, -200, 'SPRING25', NULL, 'seasonal', 3, 231, 260, 'SS', false, false),
    (115, 'summer-preview', 'Summer Preview', 30, 1, NULL, false, false, true, false, true,
     NULL, NULL, NULL, NULL, 'SUMMER', NULL, 'seasonal', 0, NULL, NULL, NULL, false, false),
    (116, 'referral-reward', 'Referral Reward', 60, 1, NULL, true, false, true, true, false,
     NULL, NULL, '{">=": [{"var": "aggregations.shop_count"}, 1]}', NULL, 'REFER', NULL, 'referral',
     3, 0.5, 200, 'RF', false, false),
    (117, 'free-upsize', 'Free Upsize', 7, 3, NULL, true, false, true, false, true,
     NULL, NULL, NULL, NULL, 'UPSIZE', NULL, 'cafe', 3, 0.5, 120, 'UP', false, false),
    (118, 'flash-sale-a', 'Flash Sale A', 10, 1, 2, true, false, true, false, true,
     NULL, NULL, NULL, NULL, 'FLASHA', NULL, 'flash', 0, NULL, NULL, 'XA', false, false),
    (119, 'flash-sale-b', 'Flash Sale B', 10, 1, 3, true, false, true, false, true,
     NULL, NULL, NULL, NULL, 'FLASHB', NULL, 'flash', 0, NULL, NULL, 'XB', false, false),
    (120, 'loyalty-milestone', 'Loyalty Milestone Gift', 45, 1, NULL, true, false, true, false, true,
     NULL, NULL, '{">=": [{"var": "days_since_joined"}, 365]}', NULL, NULL, NULL, 'milestone',
     4, 0.5, 300, 'LM', false, false)
) AS catalog (id, handle, name, period, max_redemptions, max_global_redemptions, is_published, is_archived,
              is_assignable, is_claimable, is_reclaimable, claim_start_days, claim_end_days, claim_condition,
              end_days, redeem_code_pos, redeem_code_online, tags, _weight, _min_age_days, _max_age_days,
              _instance_prefix, _allocated, _global_cap)
ORDER BY id
