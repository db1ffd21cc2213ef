-- One row per POS benefit usage and per Omneo redeem item, paired or not: how each side of
-- the reconciliation was matched. seconds_apart is null for an unpaired row.
-- Pairs are one-to-one and always hold a redeem item, so every redeem item's row (holding
-- its paired usage, if any) and every unpaired usage's row are all the rows: no join here,
-- the facts tables hold both sides and the benefit's facts already.
SELECT match, benefit_id, definition_id, profile_id, usage_source_file, usage_source_row,
       transaction_external_id, transacted_at, pos_status, resolved_by, paired_by,
       redemption_id, redemption_item_id, redeemed_at, seconds_apart
FROM (
    SELECT CASE WHEN usage_source_file IS NULL THEN 'item_only' ELSE 'paired' END AS match,
           benefit_id, definition_id,
           coalesce(benefit_profile_id, usage_profile_id, redemption_profile_id)   AS profile_id,
           usage_source_file, usage_source_row, transaction_external_id, transacted_at, pos_status,
           resolved_by, paired_by, redemption_id, redemption_item_id, redeemed_at,
           abs(epoch(transacted_at) - epoch(redeemed_at))                          AS seconds_apart,
           item_position
    FROM recon_item_facts
    WHERE kind = 'redeem'
    UNION ALL
    SELECT 'usage_only', benefit_id, definition_id, coalesce(benefit_profile_id, usage_profile_id),
           usage_source_file, usage_source_row, transaction_external_id, transacted_at, pos_status,
           resolved_by, NULL, NULL, NULL, NULL, NULL, NULL
    FROM recon_usage_facts
    WHERE paired_redemption_id IS NULL
)
ORDER BY benefit_id NULLS LAST, coalesce(transacted_at, redeemed_at), usage_source_file, usage_source_row,
         redemption_id, item_position
