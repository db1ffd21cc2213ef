-- The report's figures, one query a part, each over the warehouse views it names. A part
-- runs only when its view exists in the run (report.py checks), so a partial run still
-- gets a report with the sections it can fill.

-- part: issuance_by_campaign
-- One row per campaign and outcome: `issued` or the skip reason, with how many profiles.
SELECT label, series, value
FROM (SELECT campaign_id AS label, coalesce(reason, 'issued') AS series, count(*) AS value FROM plan GROUP BY ALL)
ORDER BY label, series <> 'issued', series

-- part: exceptions_by_category
-- One row per category and action, with how many findings.
SELECT category AS label, action AS series, count(*) AS value
FROM exceptions
GROUP BY ALL
ORDER BY label, series

-- part: redemptions_per_day
-- One row per local day of the 30 ending on the as-of day and side: Omneo redemption items
-- and POS benefit usages that day (zero when none, so the days line up).
WITH days AS (
    SELECT CAST($last_day AS DATE) - CAST(back AS INTEGER) AS day FROM range(30) t(back)
), sides AS (
    SELECT (redeemed_at AT TIME ZONE $timezone)::DATE AS day, 'Omneo' AS series
    FROM matches WHERE match <> 'usage_only'  -- items and flat redemptions (no item id)
    UNION ALL
    SELECT (transacted_at AT TIME ZONE $timezone)::DATE, 'POS'
    FROM matches WHERE transaction_external_id IS NOT NULL
)
SELECT strftime(d.day, '%Y-%m-%d') AS label, s.series, count(x.day) AS value
FROM days d
CROSS JOIN (VALUES ('Omneo'), ('POS')) s(series)
LEFT JOIN sides x ON x.day = d.day AND x.series = s.series
GROUP BY ALL
ORDER BY label, series

-- part: top_exceptions
-- The findings to look at first: errors before warnings, then by category and id.
SELECT category, severity, action, profile_id, benefit_id, redemption_id, transaction_external_id, detail
FROM exceptions
ORDER BY severity = 'error' DESC, category, exception_id
LIMIT 25

-- part: rejects_summary
-- One row per dataset, reason and column of the rejected input rows, most common first.
SELECT dataset, reason, "column", count(*) AS faults, min(value) AS example
FROM rejects
GROUP BY ALL
ORDER BY faults DESC, dataset, reason, "column"

-- part: push_by_kind
-- One row per payload kind and state of its calls after the last push, with how many.
SELECT label, series, value
FROM (SELECT kind AS label, state AS series, count(*) AS value FROM push_results GROUP BY ALL)
ORDER BY list_position(['benefits', 'claim_redeem', 'redemptions', 'returns'], label), series

-- part: push_to_review
-- The calls a person should look at: refused by Omneo, of unknown outcome, or not sent yet.
SELECT kind, key, state, status, attempts, error
FROM push_results
WHERE state <> 'sent'
ORDER BY state = 'ambiguous' DESC, state = 'rejected' DESC, kind, file, line
LIMIT 25
