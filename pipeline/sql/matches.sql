-- One row per POS benefit usage and per Omneo redeem item, paired or not: how each side of
-- the reconciliation was matched. seconds_apart is null for an unpaired row.
-- The rows are recon_facts' (recon_facts.sql); written straight from that table, so a column
-- that holds no NULL is REQUIRED in the file, as the table's statistics say.
SELECT match, benefit_id, definition_id, profile_id, usage_source_file, usage_source_row,
       transaction_external_id, transacted_at, pos_status, resolved_by, paired_by,
       redemption_id, redemption_item_id, redeemed_at, seconds_apart
FROM recon_facts
ORDER BY benefit_id NULLS LAST, coalesce(transacted_at, redeemed_at), usage_source_file, usage_source_row,
         redemption_id, item_position
