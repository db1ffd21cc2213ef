-- Pairs a usage that names a redemption with that redemption's item directly. When two
-- usages name the same redemption, the earlier usage gets it.
SELECT usage_source_file, usage_source_row, direct_redemption_id AS redemption_id,
       direct_item_position AS item_position, 'direct' AS paired_by
FROM recon_usages
WHERE direct_redemption_id IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY direct_redemption_id, direct_item_position
                           ORDER BY transacted_at, usage_source_file, usage_source_row) = 1
