-- One row per POS usage and per Omneo redeem item, a pair being one row holding both sides
-- (the rows of matches.parquet, unsorted), with what the findings need of each side and of
-- the benefit: built once after matching, read by matches, exceptions and the payloads.
-- The benefit is the usage's, else the item's (a pair's two sides name the same benefit).
-- The first 15 columns are matches.parquet's; the rest feed exceptions.sql.
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
       abs(epoch(u.transacted_at) - epoch(i.redeemed_at))             AS seconds_apart,
       -- the usage's side
       u.usage_profile_id, u.named_redemption_id, u.named_benefit_id, u.redeem_code, u.code_definition_id,
       -- the benefit's
       b.benefit_id IS NOT NULL                                       AS known_benefit,
       b.profile_id                                                   AS benefit_profile_id,
       b.issued_at, b.expires_at, b.computed_remaining,
       -- the item's side
       i.item_position, i.count, i.returned, i.returns_left_over, i.redemption_profile_id
FROM usages u
FULL OUTER JOIN items i ON i.redemption_id = u.pair_redemption_id AND i.item_position = u.pair_item_position
LEFT JOIN recon_ledger b ON b.benefit_id = coalesce(u.benefit_id, i.benefit_id)
