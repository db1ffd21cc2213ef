-- One row per POS usage with what the later statements ask of it: its benefit's facts
-- (from the ledger) and its pairing. Built once after matching, read by the exceptions,
-- the matches and the corrective payloads (each joined these again before).
SELECT u.*,
       l.profile_id                                     AS benefit_profile_id,
       l.definition_id,
       l.issued_at, l.expires_at,
       l.computed_remaining,
       l.timezone                                       AS benefit_timezone,
       p.redemption_id                                  AS paired_redemption_id,
       p.paired_by
FROM recon_usages u
LEFT JOIN recon_ledger l ON l.benefit_id = u.benefit_id
LEFT JOIN recon_pairs p USING (usage_source_file, usage_source_row)
