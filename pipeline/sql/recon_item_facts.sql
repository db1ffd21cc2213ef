-- One row per Omneo redemption item with its benefit's facts (from the ledger), its
-- pairing and the paired usage's side. Built once after matching, read by the exceptions
-- and the matches.
SELECT i.*,
       b.benefit_id IS NOT NULL                         AS known_benefit,
       b.profile_id                                     AS benefit_profile_id,
       b.definition_id,
       b.issued_at, b.expires_at,
       p.usage_source_file, p.usage_source_row, p.paired_by,
       u.pos_status, u.transaction_external_id, u.transacted_at, u.usage_profile_id, u.resolved_by,
       i.count - i.returned                             AS still_redeemed
FROM recon_items i
LEFT JOIN recon_ledger b ON b.benefit_id = i.benefit_id
LEFT JOIN recon_pairs p USING (redemption_id, item_position)
LEFT JOIN recon_usages u USING (usage_source_file, usage_source_row)
