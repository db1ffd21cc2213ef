-- One row per planted reconciliation anomaly: which finding it must produce, on which
-- profile, and the benefit, Omneo redemptions and POS sales that make it happen. Each
-- anomaly gets a profile of its own from the reserved block at the end of the profile
-- range (no background data touches those), so it produces exactly its own finding.
-- $seed, $as_of, $profiles; $reserved: size of the reserved block; $per_variant: how many
-- of each variant (the flash sales are fixed: one finding per definition).
--
-- Times are relative to `base`, a moment 3 to 23 days before as_of (well past the 24 h grace):
-- issued_days/valid_days in days, r1_s/r2_s (Omneo redemptions) and *_usage_s (POS sales) in
-- seconds. A list 'a|b' rotates over the variant's instances. usage forms: how the POS row
-- names what it used (benefit_id, instance_code, definition_code, redemption_id, or an id or
-- code nobody has). names_*: which ids the finding carries (truth/anomalies.csv).
WITH variants (variant_no, variant, category, action, instances, definition_id, issued_days, valid_days, remaining,
               r1_s, r1_usage_s, r2_s, r2_usage_s, lone_usage_s, redemption_profile, item_benefit, redemption_forms,
               usage_statuses, usage_forms, usage_profile, return_rows,
               names_benefit, names_redemption, names_transaction, names_profile, note) AS (VALUES
    (1, 'omneo_redemption', 'missing_in_omneo', 'redemption', NULL, 101, -10, 30, 1,
     NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL,
     'completed', 'benefit_id|instance_code|definition_code', 'own', 0, 'own', NULL, 'lone', true,
     'a completed POS sale used a valid, unredeemed benefit; Omneo has no redemption'),
    (2, 'omneo_claim', 'missing_in_omneo', 'claim_redeem', NULL, 105, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL,
     'completed', 'definition_code', 'own', 0, NULL, NULL, 'lone', true,
     'a completed POS sale rang up a claimable definition''s code for an eligible profile holding none'),
    (3, 'omneo_expired', 'missing_in_omneo', 'manual_review', NULL, 101, -40, 30, 1,
     NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL,
     'completed', 'benefit_id|instance_code', 'own', 0, 'own', NULL, 'lone', true,
     'a completed POS sale used a benefit ten days after it expired; Omneo has no redemption'),
    (4, 'omneo_unknown_redemption', 'missing_in_omneo', 'manual_review', NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL,
     'completed', 'unknown_redemption', 'own', 0, NULL, 'unknown', 'lone', true,
     'a completed POS sale names a redemption id Omneo does not have'),
    (5, 'omneo_unclaimable_code', 'missing_in_omneo', 'manual_review', NULL, 102, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL,
     'completed', 'definition_code', 'own', 0, NULL, NULL, 'lone', true,
     'a completed POS sale rang up a non-claimable definition''s code for a profile holding none'),
    (6, 'missing_in_pos', 'missing_in_pos', 'return', NULL, 101, -5, 30, 0,
     0, NULL, NULL, NULL, NULL, 'own', 'own', 'items|flat',
     NULL, NULL, NULL, 0, 'own', 'r1', NULL, true,
     'an Omneo redemption days old that no POS sale shows'),
    (7, 'voided_in_pos', 'voided_in_pos', 'return', NULL, 101, -5, 30, 0,
     0, 40, NULL, NULL, NULL, 'own', 'own', 'items|flat',
     'voided|refunded', 'benefit_id|redemption_id|instance_code', 'own', 0, 'own', 'r1', 'r1', true,
     'an Omneo redemption whose POS sale was voided or refunded'),
    (8, 'duplicate_redemption', 'duplicate_redemption', 'return', NULL, 104, -10, 90, 3,
     0, 30, 600, NULL, NULL, 'own', 'own', 'items|flat',
     'completed', 'benefit_id', 'own', 0, 'own', 'r2', NULL, true,
     'Omneo recorded one POS sale''s use twice, ten minutes apart'),
    (9, 'unknown_benefit_item', 'unknown_benefit', 'manual_review', NULL, NULL, NULL, NULL, NULL,
     0, NULL, NULL, NULL, NULL, 'own', 'unknown', 'items|flat',
     NULL, NULL, NULL, 0, 'unknown', 'r1', NULL, true,
     'an Omneo redemption names a benefit missing from the benefits export'),
    (10, 'unknown_benefit_usage', 'unknown_benefit', 'manual_review', NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL,
     'completed', 'unknown_benefit', 'own', 0, 'unknown', NULL, 'lone', true,
     'a completed POS sale names a benefit id missing from the benefits export'),
    (11, 'unknown_redeem_code', 'unknown_redeem_code', 'manual_review', NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL,
     'completed', 'unknown_code', 'own', 0, NULL, NULL, 'lone', true,
     'a completed POS sale rang up a code no benefit and no definition has'),
    (12, 'mismatch_redemption', 'profile_mismatch', 'manual_review', NULL, 101, -5, 30, 0,
     0, 40, NULL, NULL, NULL, 'other', 'own', 'items|flat',
     'completed', 'benefit_id', 'own', 0, 'own', 'r1', NULL, true,
     'Omneo recorded the redemption against another profile than the benefit''s'),
    (13, 'mismatch_usage', 'profile_mismatch', 'manual_review', NULL, 101, -5, 30, 0,
     0, 40, NULL, NULL, NULL, 'own', 'own', 'items|flat',
     'completed', 'benefit_id', 'other', 0, 'own', NULL, 'r1', true,
     'the POS sale that used the benefit names another profile than the benefit''s'),
    (14, 'before_issue', 'redeemed_before_issue', 'manual_review', NULL, 101, 0, 30, 0,
     -7200, -7160, NULL, NULL, NULL, 'own', 'own', 'items|flat',
     'completed', 'benefit_id', 'own', 0, 'own', 'r1', NULL, true,
     'redeemed (and sold) two hours before the benefit was issued'),
    (15, 'after_expiry', 'redeemed_after_expiry', 'manual_review', NULL, 101, -31, 30, 0,
     0, 40, NULL, NULL, NULL, 'own', 'own', 'items|flat',
     'completed', 'benefit_id', 'own', 0, 'own', 'r1', NULL, true,
     'redeemed (and sold) a day after the benefit expired'),
    (16, 'over_redeemed', 'over_redeemed', 'manual_review', NULL, 101, -10, 30, NULL,
     -432000, -431960, 0, 40, NULL, 'own', 'own', 'items|flat',
     'completed', 'benefit_id', 'own', 0, 'own', NULL, NULL, true,
     'a one-use benefit redeemed twice, five days apart, each with its POS sale'),
    (17, 'return_exceeds', 'return_exceeds_redeemed', 'manual_review', NULL, 101, -10, 30, 1,
     0, 40, NULL, NULL, NULL, 'own', 'own', 'items|flat',
     'completed', 'benefit_id', 'own', 2, 'own', 'r1', NULL, true,
     'two returns of one use each against a redemption of one use'),
    (18, 'remaining_mismatch', 'remaining_mismatch', 'manual_review', NULL, 104, -10, 90, 2,
     0, 40, NULL, NULL, NULL, 'own', 'own', 'items',
     'completed', 'benefit_id', 'own', 0, 'own', NULL, NULL, true,
     'redemptions_remaining says 2; five uses less one redemption leave 4'),
    (19, 'flash_sale_a', 'global_over_redeemed', 'manual_review', 3, 118, -2, 10, 0,
     0, 40, NULL, NULL, NULL, 'own', 'own', 'items',
     'completed', 'benefit_id', 'own', 0, NULL, NULL, NULL, false,
     'three instances redeemed once each against a global cap of 2'),
    (20, 'flash_sale_b', 'global_over_redeemed', 'manual_review', 4, 119, -2, 10, 0,
     0, 40, NULL, NULL, NULL, 'own', 'own', 'flat',
     'completed', 'redemption_id', 'own', 0, NULL, NULL, NULL, false,
     'four instances redeemed once each against a global cap of 3')
), instances AS (
    SELECT v.*, t.j
    FROM variants v, range(coalesce(v.instances, $per_variant)) t(j)
), numbered AS (
    SELECT *,
           row_number() OVER (ORDER BY variant_no, j) - 1                      AS anomaly_no,
           -- Claim-redeem needs a profile its claim condition (tier silver or gold) admits.
           variant = 'omneo_claim'                                             AS needs_claim_ready,
           row_number() OVER (PARTITION BY variant = 'omneo_claim' ORDER BY variant_no, j) AS slot
    FROM instances
), reserved AS (
    -- Members of a few months at least: planted benefits are issued up to 63 days back.
    SELECT i, gen_profile_tier($seed, i) IN ('silver', 'gold') AS claim_ready
    FROM range($profiles - $reserved, $profiles) t(i)
    WHERE gen_profile_tenure_days($seed, i) >= 90
), claim_slots AS (
    SELECT i, row_number() OVER (ORDER BY i DESC) AS slot FROM reserved WHERE claim_ready
), other_slots AS (
    SELECT i, row_number() OVER (ORDER BY i DESC) AS slot
    FROM reserved
    WHERE i NOT IN (SELECT i FROM claim_slots WHERE slot <= (SELECT count(*) FROM numbered WHERE needs_claim_ready))
), placed AS (
    SELECT n.*, coalesce(c.i, o.i) AS profile_index
    FROM numbered n
    LEFT JOIN claim_slots c ON n.needs_claim_ready AND c.slot = n.slot
    LEFT JOIN other_slots o ON NOT n.needs_claim_ready AND o.slot = n.slot
)
SELECT anomaly_no, variant, category, action, j, note, definition_id,
       profile_index,
       -- "Another profile": an ordinary (not reserved) profile.
       (hash($seed, anomaly_no, 'other') % ($profiles - $reserved))::BIGINT      AS other_profile_index,
       base,
       base + to_days(issued_days)                                             AS issued_at,
       base + to_days(issued_days) + to_days(valid_days)                       AS expires_at,
       remaining::BIGINT                                                       AS remaining,
       base + to_seconds(r1_s)                                                 AS r1_at,
       base + to_seconds(r1_usage_s)                                           AS r1_usage_at,
       base + to_seconds(r2_s)                                                 AS r2_at,
       base + to_seconds(r2_usage_s)                                           AS r2_usage_at,
       base + to_seconds(lone_usage_s)                                         AS lone_usage_at,
       redemption_profile, item_benefit,
       string_split(redemption_forms, '|')[1 + j % len(string_split(redemption_forms, '|'))] AS redemption_form,
       string_split(usage_statuses, '|')[1 + j % len(string_split(usage_statuses, '|'))]     AS usage_status,
       string_split(usage_forms, '|')[1 + j % len(string_split(usage_forms, '|'))]           AS usage_form,
       usage_profile, return_rows::BIGINT AS return_rows,
       -- Ids nobody has: a redemption Omneo never recorded, a benefit not in the export, a code.
       900000000 + anomaly_no                                                  AS unknown_redemption_id,
       950000000 + anomaly_no                                                  AS unknown_benefit_id,
       'UNK-' || upper(substr(md5($seed || ':' || anomaly_no), 1, 8))          AS unknown_code,
       -- The store and POS external_id of the sale with no redemption behind it (lone_usage_at).
       lone_store,
       lone_store || '-' || lpad((200000000 + anomaly_no)::VARCHAR, 9, '0')   AS lone_external_id,
       names_benefit, names_redemption, names_transaction, names_profile
FROM (SELECT *, $as_of - to_seconds((3 * 86400 + hash($seed, anomaly_no, 'base') % (20 * 86400))::BIGINT) AS base,
             gen_store(gen_profile_zone($seed, profile_index), gen_u($seed, anomaly_no, 'lone_store')) AS lone_store
      FROM placed WHERE profile_index IS NOT NULL)
ORDER BY anomaly_no
