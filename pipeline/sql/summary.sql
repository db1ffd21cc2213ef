-- summary: the run's headline counts, one row per figure (area, metric, value).
-- Blocks are separated by a `-- part: <view>` line; warehouse.build keeps a block only when
-- the view it reads exists in this run (a validate-only run has no plan, say).
-- The per-dataset input counts are added by warehouse.build, one pair per dataset.

-- part: rejects
SELECT 'inputs' AS area, 'rows_rejected' AS metric,
       count(DISTINCT (dataset, source_file, source_row)) AS value FROM rejects
UNION ALL SELECT 'inputs', 'reject_faults', count(*) FROM rejects

-- part: plan
SELECT 'issuance', 'campaigns', count(DISTINCT campaign_id) FROM plan
UNION ALL SELECT 'issuance', 'profiles_considered', count(*) FROM plan
UNION ALL SELECT 'issuance', 'benefits_issued', count(*) FILTER (WHERE decision = 'issue') FROM plan
UNION ALL SELECT 'issuance', 'skipped', count(*) FILTER (WHERE decision = 'skip') FROM plan

-- part: ledger
SELECT 'reconciliation', 'benefits', count(*) FROM ledger
UNION ALL SELECT 'reconciliation', 'benefits_over_redeemed', count(*) FILTER (WHERE status = 'over_redeemed') FROM ledger

-- part: matches
SELECT 'reconciliation', 'pos_usages', count(transaction_external_id) FROM matches
UNION ALL SELECT 'reconciliation', 'omneo_redemption_items', count(redemption_item_id) FROM matches
UNION ALL SELECT 'reconciliation', 'paired', count(*) FILTER (WHERE match = 'paired') FROM matches

-- part: exceptions
SELECT 'reconciliation', 'exceptions', count(*) FROM exceptions
UNION ALL SELECT 'reconciliation', 'exceptions_error', count(*) FILTER (WHERE severity = 'error') FROM exceptions
UNION ALL SELECT 'reconciliation', 'exceptions_warning', count(*) FILTER (WHERE severity = 'warning') FROM exceptions
UNION ALL SELECT 'reconciliation', 'manual_review', count(*) FILTER (WHERE action = 'manual_review') FROM exceptions

-- part: payloads
SELECT 'payloads', kind || '_calls', count(*) FROM payloads GROUP BY kind
UNION ALL SELECT 'payloads', 'calls', count(*) FROM payloads

-- part: push_results
SELECT 'push', 'calls_' || state, count(*) FROM push_results GROUP BY state
UNION ALL SELECT 'push', 'calls', count(*) FROM push_results
