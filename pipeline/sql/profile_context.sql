-- One row per accepted profile: every variable a JsonLogic rule can read about it (contract §3).
-- Dotted names ("tier.handle", "aggregations.spend_12m") are column names, quoted, so the
-- rule compiler maps a `var` path straight onto a column.
-- $as_of: the run's instant (UTC); $default_timezone: for profiles that name none.
-- Reads `context_profiles` and `context_sale_tops`: the profiles in scope (all of them for
-- issuance, a few for reconciliation's claim checks: issuance.py) and their sales, one row
-- per sale (`sale_tops.sql`).
WITH spend AS (
    -- Sums are exact decimals (to a millionth of the currency unit): a sum of doubles depends
    -- on the order threads add them in, and a rule such as spend_12m >= 500 must decide the
    -- same way on every rerun. Validation bounds `total`, so the decimal cannot overflow.
    SELECT sale.profile_id,
           CAST(sum(sale.total) AS DOUBLE)                                              AS spend_all,
           CAST(sum(sale.total) FILTER (WHERE sale.transacted_at > $as_of - INTERVAL 12 MONTH) AS DOUBLE)
                                                                                        AS spend_12m,
           count(*) FILTER (WHERE sale.transacted_at > $as_of - INTERVAL 12 MONTH)      AS shops_12m,
           count(*)                                                                     AS shop_count
    FROM context_sale_tops AS sale
    GROUP BY sale.profile_id
), zones AS (
    -- The calendar date at as_of in each zone profiles live in (a handful of rows): birthdays
    -- and tenure are local, and one conversion per zone is cheaper than one per profile.
    SELECT tz, CAST(timezone(tz, $as_of) AS DATE) AS local_today
    FROM (SELECT DISTINCT coalesce(timezone, $default_timezone) AS tz FROM context_profiles)
), local AS (
    SELECT p.*, z.local_today
    FROM context_profiles p
    JOIN zones z ON z.tz = coalesce(p.timezone, $default_timezone)
)
SELECT
    l.* EXCLUDE (local_today),
    l.tier_handle                                    AS "tier.handle",
    array_to_string(coalesce(l.tags, []), ',')       AS flattened_tags,
    array_to_string(coalesce(l.statuses, []), ',')   AS flattened_statuses,
    coalesce(s.spend_all, 0)                         AS "aggregations.spend_all",
    coalesce(s.spend_12m, 0)                         AS "aggregations.spend_12m",
    -- Average transaction value over the last 12 months; 0 with no sale.
    CASE WHEN coalesce(s.shops_12m, 0) = 0 THEN 0 ELSE s.spend_12m / s.shops_12m END
                                                     AS "aggregations.spend_atv_12m",
    coalesce(s.shop_count, 0)                        AS "aggregations.shop_count",
    -- Whole years at as_of; a missing month or day counts as 1 January.
    CASE WHEN l.birth_year IS NOT NULL THEN
        year(l.local_today) - l.birth_year
        - CASE WHEN (month(l.local_today), day(l.local_today))
                    < (coalesce(l.birth_month, 1), coalesce(l.birth_day, 1)) THEN 1 ELSE 0 END
    END                                              AS age,
    CASE WHEN l.joined_at IS NOT NULL THEN
        date_diff('day', CAST(timezone(coalesce(l.timezone, $default_timezone), l.joined_at) AS DATE), l.local_today)
    END                                              AS days_since_joined
FROM local l
LEFT JOIN spend s ON s.profile_id = l.id
