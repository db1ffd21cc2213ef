-- summary: the run's headline counts, one row per figure (area, metric, value).
-- Blocks are separated by a `-- part: <view>` line; warehouse.build keeps a block only when
-- the view it reads exists in this run (a validate-only run has no plan, say).
-- The per-dataset input counts are added by warehouse.build, one pair per dataset.
-- Each block reads its view once: every figure is an aggregate of the same scan, turned
-- into rows by UNPIVOT (the payloads are a gigabyte of JSON lines at 10M profiles).

-- part: rejects
SELECT 'inputs' AS area, metric, value FROM (
    SELECT count(DISTINCT (dataset, source_file, source_row)) AS rows_rejected, count(*) AS reject_faults
    FROM rejects
) UNPIVOT (value FOR metric IN (rows_rejected, reject_faults))

-- part: plan
SELECT 'issuance', metric, value FROM (
    SELECT count(DISTINCT campaign_id)                     AS campaigns,
           count(*)                                        AS profiles_considered,
           count(*) FILTER (WHERE decision = 'issue')      AS benefits_issued,
           count(*) FILTER (WHERE decision = 'skip')       AS skipped
    FROM plan
) UNPIVOT (value FOR metric IN (campaigns, profiles_considered, benefits_issued, skipped))

-- part: ledger
SELECT 'reconciliation', metric, value FROM (
    SELECT count(*) AS benefits, count(*) FILTER (WHERE status = 'over_redeemed') AS benefits_over_redeemed
    FROM ledger
) UNPIVOT (value FOR metric IN (benefits, benefits_over_redeemed))

-- part: matches
SELECT 'reconciliation', metric, value FROM (
    -- An Omneo row is paired or item_only; a flat redemption (no items) is one item with no
    -- item id, so counting item ids left 1,078 of 5,335 out at 20k profiles.
    SELECT count(transaction_external_id)               AS pos_usages,
           count(*) FILTER (WHERE match <> 'usage_only') AS omneo_redemption_items,
           count(*) FILTER (WHERE match = 'paired')     AS paired
    FROM matches
) UNPIVOT (value FOR metric IN (pos_usages, omneo_redemption_items, paired))

-- part: exceptions
SELECT 'reconciliation', metric, value FROM (
    SELECT count(*)                                         AS exceptions,
           count(*) FILTER (WHERE severity = 'error')       AS exceptions_error,
           count(*) FILTER (WHERE severity = 'warning')     AS exceptions_warning,
           count(*) FILTER (WHERE action = 'manual_review') AS manual_review
    FROM exceptions
) UNPIVOT (value FOR metric IN (exceptions, exceptions_error, exceptions_warning, manual_review))

-- part: payloads
SELECT 'payloads', coalesce(kind || '_calls', 'calls'), count(*) FROM payloads GROUP BY ROLLUP (kind)

-- part: push_results
SELECT 'push', coalesce('calls_' || state, 'calls'), count(*) FROM push_results GROUP BY ROLLUP (state)
