-- One row per reconciliation finding: each category is a SELECT of the rows that show it
-- (contract §5, docs/reconciliation.md). Columns starting with `_` feed the corrective
-- payloads and are not written to exceptions.parquet.
-- $as_of, $grace_seconds, $window_seconds.
-- Usages and items with their benefit and pairing are recon_facts' rows (recon_facts.sql)
-- plus the items of returns and reversals (recon_return_items), never paired. Not
-- materialized: each finding below scans the table for its own few rows.
WITH usage_facts AS NOT MATERIALIZED (
    SELECT usage_source_file, usage_source_row, transaction_external_id, transacted_at, usage_profile_id, pos_status,
           named_redemption_id, named_benefit_id, redeem_code, benefit_id, code_definition_id,
           benefit_profile_id, definition_id, issued_at, expires_at, computed_remaining,
           redemption_id                                    AS paired_redemption_id
    FROM recon_facts
    WHERE usage_source_file IS NOT NULL
), item_facts AS NOT MATERIALIZED (
    SELECT redemption_item_id, redemption_id, item_position, benefit_id, count, 'redeem' AS kind,
           redemption_profile_id, redeemed_at, returned, returns_left_over,
           known_benefit, benefit_profile_id, definition_id, issued_at, expires_at,
           usage_source_file, usage_source_row, pos_status, transaction_external_id,
           count - returned                                 AS still_redeemed
    FROM recon_facts
    WHERE redemption_id IS NOT NULL
    UNION ALL
    SELECT redemption_item_id, redemption_id, item_position, benefit_id, count, kind,
           redemption_profile_id, redeemed_at, returned, returns_left_over,
           known_benefit, benefit_profile_id, definition_id, issued_at, expires_at,
           NULL, NULL, NULL, NULL,
           count - returned
    FROM recon_return_items
), missing AS (
    -- Completed sales with no Omneo redemption; in time order they compete for the uses
    -- left on their benefit (only so many can be redeemed retroactively).
    SELECT *, row_number() OVER (PARTITION BY benefit_id
                                 ORDER BY transacted_at, usage_source_file, usage_source_row) AS missing_rank
    FROM usage_facts
    WHERE pos_status = 'completed' AND paired_redemption_id IS NULL
), duplicates AS (
    -- Unpaired redeem items in the window of a paired usage of the same benefit.
    SELECT DISTINCT i.redemption_id, i.item_position
    FROM item_facts i
    JOIN usage_facts u ON u.benefit_id = i.benefit_id AND u.paired_redemption_id IS NOT NULL
    WHERE i.kind = 'redeem' AND i.usage_source_file IS NULL AND i.known_benefit
      AND abs(epoch(u.transacted_at) - epoch(i.redeemed_at)) <= $window_seconds
)

SELECT 'missing_in_omneo' AS category, 'error' AS severity,
       CASE WHEN u.benefit_id IS NOT NULL
                 AND u.issued_at <= u.transacted_at
                 AND (u.expires_at IS NULL OR u.transacted_at <= u.expires_at)
                 AND (u.computed_remaining IS NULL OR u.missing_rank <= u.computed_remaining)
                 AND (u.usage_profile_id IS NULL OR u.usage_profile_id = u.benefit_profile_id)
                 THEN 'redemption'
            WHEN u.benefit_id IS NULL AND c.usage_source_row IS NOT NULL THEN 'claim_redeem'
            ELSE 'manual_review' END AS action,
       coalesce(u.benefit_profile_id, u.usage_profile_id) AS profile_id,
       u.benefit_id, coalesce(u.definition_id, u.code_definition_id) AS definition_id,
       u.named_redemption_id AS redemption_id, NULL::BIGINT AS redemption_item_id,
       u.transaction_external_id,
       'completed POS sale used ' || coalesce('benefit ' || u.benefit_id, 'code ' || u.redeem_code, 'redemption ' || u.named_redemption_id)
           || ' with no Omneo redemption' AS detail,
       u.usage_source_file AS _usage_source_file, u.usage_source_row AS _usage_source_row,
       NULL::BIGINT AS _item_position, NULL::BIGINT AS _return_count, u.redeem_code AS _redeem_code
FROM missing u
LEFT JOIN claim_eligible c USING (usage_source_file, usage_source_row)
WHERE (u.benefit_id IS NOT NULL OR u.code_definition_id IS NOT NULL OR u.named_redemption_id IS NOT NULL)

UNION ALL
SELECT 'missing_in_pos', 'error', 'return', coalesce(benefit_profile_id, redemption_profile_id), benefit_id, definition_id,
       redemption_id, redemption_item_id, NULL,
       'Omneo redemption ' || redemption_id || ' of benefit ' || benefit_id || ' has no POS sale',
       NULL, NULL, item_position, still_redeemed, NULL
FROM item_facts i
WHERE kind = 'redeem' AND known_benefit AND usage_source_file IS NULL AND still_redeemed > 0
  AND redeemed_at < $as_of - to_seconds($grace_seconds)
  AND (redemption_id, item_position) NOT IN (SELECT redemption_id, item_position FROM duplicates)

UNION ALL
SELECT 'voided_in_pos', 'error', 'return', coalesce(benefit_profile_id, redemption_profile_id), benefit_id, definition_id,
       redemption_id, redemption_item_id, transaction_external_id,
       'POS sale ' || transaction_external_id || ' was ' || pos_status || ' but Omneo redemption ' || redemption_id || ' stands',
       usage_source_file, usage_source_row, item_position, still_redeemed, NULL
FROM item_facts
WHERE kind = 'redeem' AND pos_status IN ('voided', 'refunded') AND still_redeemed > 0

UNION ALL
SELECT 'duplicate_redemption', 'error', 'return', coalesce(benefit_profile_id, redemption_profile_id), benefit_id, definition_id,
       redemption_id, redemption_item_id, NULL,
       'Omneo redemption ' || redemption_id || ' repeats a redemption of benefit ' || benefit_id || ' already matched to a POS sale',
       NULL, NULL, item_position, still_redeemed, NULL
FROM item_facts
WHERE (redemption_id, item_position) IN (SELECT redemption_id, item_position FROM duplicates) AND still_redeemed > 0

UNION ALL
SELECT 'unknown_benefit', 'warning', 'manual_review', redemption_profile_id, benefit_id, NULL,
       redemption_id, redemption_item_id, NULL,
       'redemption ' || redemption_id || ' names benefit ' || benefit_id || ', which is not in the benefits export',
       NULL, NULL, item_position, NULL, NULL
FROM item_facts
WHERE NOT known_benefit

UNION ALL
SELECT 'unknown_benefit', 'warning', 'manual_review', usage_profile_id, named_benefit_id, NULL,
       named_redemption_id, NULL, transaction_external_id,
       'POS sale names benefit ' || named_benefit_id || ', which is not in the benefits export',
       usage_source_file, usage_source_row, NULL, NULL, redeem_code
FROM usage_facts
WHERE pos_status = 'completed' AND benefit_id IS NULL AND named_benefit_id IS NOT NULL
  AND named_benefit_id NOT IN (SELECT benefit_id FROM recon_ledger)

UNION ALL
SELECT 'unknown_redeem_code', 'warning', 'manual_review', usage_profile_id, NULL, NULL, NULL, NULL,
       transaction_external_id,
       'POS code ' || redeem_code || ' matches no benefit and no definition',
       usage_source_file, usage_source_row, NULL, NULL, redeem_code
FROM usage_facts
WHERE pos_status = 'completed' AND benefit_id IS NULL AND named_benefit_id IS NULL
  AND named_redemption_id IS NULL AND code_definition_id IS NULL

UNION ALL
SELECT 'profile_mismatch', 'warning', 'manual_review', benefit_profile_id, benefit_id, definition_id,
       redemption_id, redemption_item_id, NULL,
       'redemption ' || redemption_id || ' is by profile ' || redemption_profile_id
           || ' but benefit ' || benefit_id || ' belongs to ' || benefit_profile_id,
       NULL, NULL, item_position, NULL, NULL
FROM item_facts
WHERE known_benefit AND redemption_profile_id <> benefit_profile_id

UNION ALL
SELECT 'profile_mismatch', 'warning', 'manual_review', benefit_profile_id, benefit_id, definition_id,
       named_redemption_id, NULL, transaction_external_id,
       'POS sale ' || transaction_external_id || ' is by profile ' || usage_profile_id
           || ' but benefit ' || benefit_id || ' belongs to ' || benefit_profile_id,
       usage_source_file, usage_source_row, NULL, NULL, redeem_code
FROM usage_facts
WHERE benefit_id IS NOT NULL AND usage_profile_id <> benefit_profile_id

UNION ALL
SELECT 'redeemed_before_issue', 'warning', 'manual_review', benefit_profile_id, benefit_id, definition_id,
       redemption_id, redemption_item_id, NULL,
       'redemption ' || redemption_id || ' at ' || redeemed_at || ' is before benefit ' || benefit_id || ' was issued at ' || issued_at,
       NULL, NULL, item_position, NULL, NULL
FROM item_facts
WHERE kind = 'redeem' AND known_benefit AND redeemed_at < issued_at

UNION ALL
SELECT 'redeemed_after_expiry', 'warning', 'manual_review', benefit_profile_id, benefit_id, definition_id,
       redemption_id, redemption_item_id, NULL,
       'redemption ' || redemption_id || ' at ' || redeemed_at || ' is after benefit ' || benefit_id || ' expired at ' || expires_at,
       NULL, NULL, item_position, NULL, NULL
FROM item_facts
WHERE kind = 'redeem' AND known_benefit AND redeemed_at > expires_at

UNION ALL
SELECT 'over_redeemed', 'error', 'manual_review', profile_id, benefit_id, definition_id, NULL, NULL, NULL,
       'benefit ' || benefit_id || ' is redeemed ' || net_redeemed || ' times, more than its ' || max_redemptions,
       NULL, NULL, NULL, NULL, NULL
FROM recon_ledger
WHERE net_redeemed > max_redemptions

UNION ALL
SELECT 'global_over_redeemed', 'error', 'manual_review', NULL, NULL, d.id, NULL, NULL, NULL,
       'definition ' || d.handle || ' is redeemed ' || sum(l.net_redeemed) || ' times in all, more than its '
           || d.max_global_redemptions,
       NULL, NULL, NULL, NULL, NULL
FROM recon_ledger l JOIN benefit_definitions d ON d.id = l.definition_id
WHERE d.max_global_redemptions IS NOT NULL
GROUP BY d.id, d.handle, d.max_global_redemptions
HAVING sum(l.net_redeemed) > d.max_global_redemptions

UNION ALL
SELECT 'return_exceeds_redeemed', 'warning', 'manual_review', coalesce(benefit_profile_id, redemption_profile_id),
       benefit_id, definition_id, redemption_id, redemption_item_id, NULL,
       'returns on redemption ' || redemption_id || ' exceed what it redeemed by ' || returns_left_over,
       NULL, NULL, item_position, NULL, NULL
FROM item_facts
WHERE returns_left_over > 0

UNION ALL
SELECT 'remaining_mismatch', 'warning', 'manual_review', profile_id, benefit_id, definition_id, NULL, NULL, NULL,
       'benefit ' || benefit_id || ' reports ' || reported_remaining || ' remaining; its redemptions leave ' || computed_remaining,
       NULL, NULL, NULL, NULL, NULL
FROM recon_ledger
WHERE reported_remaining IS NOT NULL AND computed_remaining IS NOT NULL AND reported_remaining <> computed_remaining
