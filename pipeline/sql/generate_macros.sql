-- Macros the generate_*.sql files share. Every draw is a hash of (seed, a key, a salt), never
-- random(): the same seed gives the same rows on any machine. A profile is a pure function
-- of (seed, its index), so other datasets name a profile by its index and no table of
-- profiles is ever joined.

-- A uniform draw in [0, 1).
CREATE OR REPLACE TEMP MACRO gen_u(seed, n, salt) AS (hash(seed, n, salt) % 1000000007) / 1000000007.0;

-- An Omneo-style profile UUID (version 4 layout) for profile index n.
CREATE OR REPLACE TEMP MACRO gen_profile_id(seed, n) AS printf(
    '%08x-%04x-4%03x-%x%03x-%012x',
    hash(seed, n, 'id1') >> 32, (hash(seed, n, 'id1') >> 16) & 65535, hash(seed, n, 'id1') & 4095,
    8 + (hash(seed, n, 'id2') >> 62), (hash(seed, n, 'id2') >> 48) & 4095, hash(seed, n, 'id2') & 281474976710655);

-- Where profiles live: mostly Australia, a few in New Zealand, 1% with no zone recorded.
CREATE OR REPLACE TEMP MACRO gen_zone_of(u) AS CASE
    WHEN u < 0.34 THEN 'Australia/Melbourne' WHEN u < 0.63 THEN 'Australia/Sydney'
    WHEN u < 0.78 THEN 'Australia/Brisbane' WHEN u < 0.86 THEN 'Australia/Perth'
    WHEN u < 0.92 THEN 'Australia/Adelaide' WHEN u < 0.94 THEN 'Australia/Hobart'
    WHEN u < 0.95 THEN 'Australia/Darwin' WHEN u < 0.99 THEN 'Pacific/Auckland' END;
CREATE OR REPLACE TEMP MACRO gen_profile_zone(seed, n) AS gen_zone_of(gen_u(seed, n, 'zone'));

-- The state (or country) a zone stands for, and the store prefix and store count there.
CREATE OR REPLACE TEMP MACRO gen_region_of(zone) AS CASE zone
    WHEN 'Australia/Melbourne' THEN 'VIC' WHEN 'Australia/Sydney' THEN 'NSW'
    WHEN 'Australia/Brisbane' THEN 'QLD' WHEN 'Australia/Perth' THEN 'WA'
    WHEN 'Australia/Adelaide' THEN 'SA' WHEN 'Australia/Hobart' THEN 'TAS'
    WHEN 'Australia/Darwin' THEN 'NT' WHEN 'Pacific/Auckland' THEN 'NZ' END;
CREATE OR REPLACE TEMP MACRO gen_store(zone, u) AS CASE
    WHEN u < 0.18 OR zone IS NULL THEN 'ONLINE'
    ELSE CASE zone
        WHEN 'Australia/Melbourne' THEN 'MEL-00' || (1 + floor(u * 60) % 6)::BIGINT
        WHEN 'Australia/Sydney' THEN 'SYD-00' || (1 + floor(u * 50) % 5)::BIGINT
        WHEN 'Australia/Brisbane' THEN 'BNE-00' || (1 + floor(u * 30) % 3)::BIGINT
        WHEN 'Australia/Perth' THEN 'PER-00' || (1 + floor(u * 20) % 2)::BIGINT
        WHEN 'Australia/Adelaide' THEN 'ADL-001' WHEN 'Australia/Hobart' THEN 'HBA-001'
        WHEN 'Australia/Darwin' THEN 'DRW-001' ELSE 'AKL-001' END END;

-- Days since the profile joined: up to eleven years, more of them recent.
CREATE OR REPLACE TEMP MACRO gen_profile_tenure_days(seed, n) AS 4000 * pow(gen_u(seed, n, 'joined'), 1.5);

-- Loyalty tier: most members are bronze.
CREATE OR REPLACE TEMP MACRO gen_profile_tier(seed, n) AS CASE
    WHEN gen_u(seed, n, 'tier') < 0.58 THEN 'bronze' WHEN gen_u(seed, n, 'tier') < 0.86 THEN 'silver'
    WHEN gen_u(seed, n, 'tier') < 0.97 THEN 'gold' ELSE 'platinum' END;

-- An instant as ISO 8601 local time with its UTC offset in `zone` (2026-11-22T09:00:00+11:00),
-- as Omneo exports it.
-- In whole seconds: `//` of a DOUBLE is no integer division in DuckDB (34200.0 // 3600 is 9.5,
-- which cast to BIGINT rounds to 10), so +09:30 (Darwin, Adelaide) was written +10:30.
CREATE OR REPLACE TEMP MACRO gen_offset_text(seconds) AS
    CASE WHEN seconds < 0 THEN '-' ELSE '+' END
    || lpad((CAST(round(abs(seconds)) AS BIGINT) // 3600)::VARCHAR, 2, '0') || ':'
    || lpad((CAST(round(abs(seconds)) AS BIGINT) % 3600 // 60)::VARCHAR, 2, '0');
CREATE OR REPLACE TEMP MACRO gen_iso(ts, zone) AS
    strftime(timezone(zone, ts), '%Y-%m-%dT%H:%M:%S')
    || gen_offset_text(epoch(timezone(zone, ts)) - epoch(ts));

-- 23:59:59 local on the local date of `ts` plus `days`: how Omneo computes an expiry (the
-- second before the next local midnight, as plan_campaign.sql has it).
CREATE OR REPLACE TEMP MACRO gen_end_of_day(ts, zone, days) AS
    timezone(zone, (CAST(timezone(zone, ts) AS DATE) + days::INTEGER + 1)::TIMESTAMP) - INTERVAL 1 SECOND;
