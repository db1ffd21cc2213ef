-- One row per benefit instance a profile holds: the background instances (0 to 3 for each
-- ordinary profile, about 0.5 on average, definitions drawn by weight and distinct per
-- profile, so a definition's code always resolves to one instance) and the instances the
-- planted anomalies need. Ids follow issue time, as Omneo's do. redemptions_remaining is
-- added by generate_benefits.sql once the redemptions exist.
-- $seed, $as_of; $background_profiles: profiles 0 … n-1 are ordinary (the rest are reserved).
WITH defs AS (
    SELECT *, row_number() OVER (ORDER BY id) - 1 AS ord FROM g_definition_catalog WHERE _weight > 0
), slots AS (
    -- One slot per unit of weight: a uniform draw over the list is a weighted draw.
    SELECT list(ord ORDER BY ord) AS slot_list FROM defs, range(_weight::BIGINT) t(s)
), holders AS (
    SELECT i, CASE WHEN u < 0.65 THEN 0 WHEN u < 0.87 THEN 1 WHEN u < 0.96 THEN 2 ELSE 3 END AS held
    FROM (SELECT i, gen_u($seed, i, 'held') AS u FROM range($background_profiles) t(i))
), drawn AS (
    -- The first definition by weight, the next ones after it in id order: never the same twice.
    SELECT h.i, h.k,
           (s.slot_list[1 + floor(gen_u($seed, h.i, 'definition') * len(s.slot_list))::BIGINT] + h.k)
               % (SELECT count(*) FROM defs) AS ord
    FROM (SELECT i, unnest(range(held)) AS k FROM holders WHERE held > 0) h, slots s
), background AS (
    SELECT 'background' AS _origin, i AS _profile_index, k AS _k, NULL::BIGINT AS _anomaly_no,
           id AS benefit_definition_id,
           -- Issued days to months ago, more of them recently, and never before the profile joined.
           $as_of - to_seconds(round(86400 * (_min_age_days + (oldest - _min_age_days)
                                              * pow(gen_u($seed, i * 4 + k, 'issued'), 1.5)))::BIGINT) AS issued_at,
           NULL::TIMESTAMPTZ AS planted_expires_at,
           gen_u($seed, i * 4 + k, 'external') < 0.5 AS has_external_id
    FROM (SELECT d.i, d.k, c.id, c._min_age_days,
                 least(c._max_age_days, gen_profile_tenure_days($seed, d.i) - 0.05) AS oldest
          FROM drawn d JOIN defs c USING (ord))
    -- A profile that joined after the definition's issuing days holds none of it.
    WHERE oldest >= _min_age_days
), planted AS (
    SELECT 'planted', profile_index, 0, anomaly_no, definition_id, issued_at, expires_at, false
    FROM g_anomalies
    WHERE issued_at IS NOT NULL
), instances AS (
    SELECT x.*, c.handle, c.period, c.end_at, c.is_claimable, c.max_redemptions, c._instance_prefix,
           c.redeem_code_pos AS definition_code_pos, c.redeem_code_online AS definition_code_online,
           gen_profile_id($seed, x._profile_index) AS profile_id,
           gen_profile_zone($seed, x._profile_index) AS profile_zone,
           row_number() OVER (ORDER BY x.issued_at, x._origin, x._profile_index, x._k, x._anomaly_no) AS n
    FROM (SELECT * FROM background UNION ALL SELECT * FROM planted) x
    JOIN g_definition_catalog c ON c.id = x.benefit_definition_id
)
SELECT 1000000 + n                                                       AS id,
       profile_id,
       benefit_definition_id,
       issued_at,
       CASE WHEN has_external_id
            THEN 'bulk:' || handle || '-' || strftime(timezone(coalesce(profile_zone, 'Australia/Melbourne'), issued_at), '%Y-%m')
                 || ':' || strftime(timezone(coalesce(profile_zone, 'Australia/Melbourne'), issued_at), '%Y-%m')
                 || ':' || profile_id END                                 AS external_id,
       CASE WHEN _origin = 'planted' THEN planted_expires_at
            WHEN period IS NOT NULL
            THEN least(gen_end_of_day(issued_at, coalesce(profile_zone, 'Australia/Melbourne'), period), end_at)
            ELSE end_at END                                               AS expires_at,
       profile_zone                                                      AS timezone,
       CASE WHEN is_claimable THEN issued_at END                         AS claimed_at,
       _instance_prefix || '-' || (1000000 + n)                          AS redeem_code_pos,
       CASE WHEN definition_code_online IS NOT NULL THEN _instance_prefix || 'W-' || (1000000 + n) END
                                                                         AS redeem_code_online,
       n - 1                                                             AS _seq,
       coalesce(profile_zone, 'Australia/Melbourne')                     AS _zone,
       _origin, _profile_index, _k, _anomaly_no, max_redemptions AS _max_redemptions,
       definition_code_pos AS _definition_code_pos, definition_code_online AS _definition_code_online
FROM instances
ORDER BY n
