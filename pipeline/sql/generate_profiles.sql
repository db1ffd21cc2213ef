-- One row per customer profile (profiles.csv), a pure function of (seed, index): names,
-- birthdays over seven decades, joins over eleven years (more of them recent), tiers, tags,
-- statuses, a share of temporary/deleted/merged profiles, zones mostly Australian, a
-- JSON attributes object and a `region` column the campaigns read.
-- The planted invalid profiles (g_faults) are profiles of their own, past the last index,
-- with one value broken (_overrides), placed after profile `pos`. Rows come out in file
-- order: only the narrow slots are sorted, never the wide rows.
-- $seed, $as_of, $profiles.
WITH slots AS (
    SELECT *
    FROM (SELECT i, i AS _pos, 0 AS _sub, NULL::MAP(VARCHAR, VARCHAR) AS _overrides FROM range($profiles) t(i)
          UNION ALL
          SELECT $profiles + 1000000 + sub, pos, sub, overrides FROM g_faults WHERE dataset = 'profiles')
    ORDER BY _pos, _sub
), draws AS (
    SELECT i, _pos, _sub, _overrides,
           gen_profile_id($seed, i)                                   AS id,
           gen_profile_zone($seed, i)                                 AS zone,
           gen_profile_tier($seed, i)                                 AS tier,
           gen_u($seed, i, 'gender')                                  AS u_gender,
           gen_u($seed, i, 'first')                                   AS u_first,
           gen_u($seed, i, 'last')                                    AS u_last,
           gen_u($seed, i, 'email')                                   AS u_email,
           gen_u($seed, i, 'birth')                                   AS u_birth,
           gen_u($seed, i, 'birth_known')                             AS u_birth_known,
           gen_u($seed, i, 'type')                                    AS u_type,
           gen_u($seed, i, 'status')                                  AS u_status,
           gen_u($seed, i, 'store')                                   AS u_store,
           CAST(timezone('Australia/Melbourne', $as_of) AS DATE)     AS today
    FROM slots
), people AS (
    SELECT *,
           CASE WHEN u_gender < 0.49 THEN 'female' WHEN u_gender < 0.94 THEN 'male'
                WHEN u_gender < 0.96 THEN 'non-binary' ELSE 'unspecified' END AS gender,
           -- Born 16 to 80 years before as_of; 6% gave no birthday, 3% no year.
           CASE WHEN u_birth_known >= 0.06 THEN today - (5844 + floor(u_birth * 23376))::INTEGER END AS born
    FROM draws
)
SELECT id,
       CASE WHEN u_email < 0.96 THEN lower(first_name) || '.' || lower(last_name) || (i % 9973)
            || ['@example.com', '@example.net', '@mail.example.org'][1 + (i % 3)] END   AS email,
       first_name, last_name, gender,
       day(born)::BIGINT                                                   AS birth_day,
       month(born)::BIGINT                                                 AS birth_month,
       CASE WHEN u_birth_known >= 0.09 THEN year(born) END::BIGINT         AS birth_year,
       $as_of - to_seconds(floor(86400 * gen_profile_tenure_days($seed, i))::BIGINT) AS joined_at,
       CASE WHEN u_type < 0.92 THEN 'active' WHEN u_type < 0.965 THEN 'temporary'
            WHEN u_type < 0.99 THEN 'deleted' ELSE 'merged' END            AS profile_type,
       tier                                                                AS tier_handle,
       list_filter([CASE WHEN gen_u($seed, i, 'vip') < 0.05 THEN 'vip' END,
                    CASE WHEN gen_u($seed, i, 'app') < 0.4 THEN 'app' END,
                    CASE WHEN gen_u($seed, i, 'newsletter') < 0.55 THEN 'newsletter' END,
                    CASE WHEN gen_u($seed, i, 'sms') < 0.2 THEN 'sms' END,
                    CASE WHEN gen_u($seed, i, 'staff') < 0.01 THEN 'staff' END,
                    CASE WHEN gen_u($seed, i, 'wholesale') < 0.01 THEN 'wholesale' END],
                   lambda t: t IS NOT NULL)                                AS tags,
       CASE WHEN u_status < 0.7 THEN ['verified'] WHEN u_status < 0.9 THEN ['verified', 'email_confirmed']
            ELSE []::VARCHAR[] END                                         AS statuses,
       zone                                                                AS timezone,
       '{"comms": {"email_promo": ' || (gen_u($seed, i, 'email_promo') < 0.7)
           || ', "sms_promo": ' || (gen_u($seed, i, 'sms_promo') < 0.25)
           || '}, "store": "' || gen_store(zone, u_store)
           || '", "source": "' || ['pos', 'web', 'app'][1 + floor(gen_u($seed, i, 'source') * 3)::BIGINT] || '"}' AS attributes,
       gen_region_of(zone)                                                 AS region,
       _pos, _sub, _overrides,
       coalesce(zone, 'Australia/Melbourne')                               AS _zone
FROM (SELECT *,
             CASE WHEN gender = 'female' OR (gender NOT IN ('male') AND u_first < 0.5)
                  THEN ['Olivia', 'Charlotte', 'Amelia', 'Isla', 'Mia', 'Ava', 'Grace', 'Chloe', 'Willow',
                        'Matilda', 'Ella', 'Sophie', 'Ruby', 'Zoe', 'Harper', 'Aanya', 'Mei', 'Priya']
                  ELSE ['Jack', 'Oliver', 'Noah', 'William', 'Leo', 'Henry', 'Thomas', 'Lucas', 'Charlie',
                        'James', 'Hudson', 'Ethan', 'Mason', 'Liam', 'Archie', 'Arjun', 'Wei', 'Tane'] END
                 [1 + floor(u_first * 18)::BIGINT]                         AS first_name,
             ['Smith', 'Jones', 'Williams', 'Brown', 'Wilson', 'Taylor', 'Nguyen', 'Johnson', 'Martin',
              'White', 'Anderson', 'Walker', 'Thompson', 'Ryan', 'Kelly', 'Chen', 'Lee', 'Singh', 'Patel',
              'Harris', 'King', 'Young', 'Scott', 'Mitchell', 'Campbell', 'O''Brien', 'Ngata', 'Kaur']
                 [1 + floor(u_last * 28)::BIGINT]                          AS last_name
      FROM people)
