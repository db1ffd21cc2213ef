-- One row per POS benefit usage and per Omneo redeem item, paired or not: how each side of
-- the reconciliation was matched. seconds_apart is null for an unpaired row.
WITH usages AS (
    SELECT u.*, p.redemption_id AS pair_redemption_id, p.item_position AS pair_item_position, p.paired_by
    FROM recon_usages u
    LEFT JOIN recon_pairs p USING (usage_source_file, usage_source_row)
), items AS (
    SELECT * FROM recon_items WHERE kind = 'redeem'
)
SELECT CASE WHEN u.usage_source_file IS NULL THEN 'item_only'
            WHEN i.redemption_id IS NULL THEN 'usage_only'
            ELSE 'paired' END                                         AS match,
       coalesce(u.benefit_id, i.benefit_id)                           AS benefit_id,
       b.definition_id,
       coalesce(b.profile_id, u.usage_profile_id, i.redemption_profile_id) AS profile_id,
       u.usage_source_file,
       u.usage_source_row,
       u.transaction_external_id,
       u.transacted_at,
       u.pos_status,
       u.resolved_by,
       u.paired_by,
       i.redemption_id,
       i.redemption_item_id,
       i.redeemed_at,
       abs(epoch(u.transacted_at) - epoch(i.redeemed_at))             AS seconds_apart
FROM usages u
FULL OUTER JOIN items i ON i.redemption_id = u.pair_redemption_id AND i.item_position = u.pair_item_position
LEFT JOIN recon_ledger b ON b.benefit_id = coalesce(u.benefit_id, i.benefit_id)
ORDER BY benefit_id NULLS LAST, coalesce(u.transacted_at, i.redeemed_at), u.usage_source_file, u.usage_source_row,
         i.redemption_id, i.item_position
