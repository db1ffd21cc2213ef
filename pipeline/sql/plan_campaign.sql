-- One campaign's plan rows, in four statements (contract §4). Reads `candidates` (the
-- profiles passing this campaign's rules, with their type and zone), `benefit_definitions`,
-- `holdings`, `bulk_holdings` (the holdings' external_ids that start with 'bulk:') and the
-- rows `plan_rows` already has from earlier campaigns.
--
-- Everything but the profile, the decision and its reason depends only on the campaign and
-- the zone: `slots` computes it once per (campaign, zone); `reasons` keeps one narrow row
-- per candidate with its zone, `decide` stores one per profile, sorted, pointing at its
-- slot, and `plan` appends the campaign's rows to table `plan`, each widened from its slot. Sorting 13 columns per profile was most
-- of a campaign's cost (at 10M profiles the whole run took 78.0 s against 80.3 s with wide
-- rows; plan.parquet has the same bytes).

-- part: slots
-- One row per zone among this campaign's candidates. issued_at is a local wall time in the
-- benefit's zone; default: as_of. The local time is always the wall time of the issue
-- instant: an issued_at in a DST gap (02:30 the night clocks go 02:00 -> 03:00) is the 03:30
-- its instant reads, not a time that never was. ICU conversions are the costly part: once
-- per zone, never per profile.
INSERT INTO plan_slots BY NAME
WITH d AS (
    SELECT * FROM benefit_definitions WHERE id = $definition_id
), zones AS (
    SELECT tz, issued_at_utc, timezone(tz, issued_at_utc)                                AS issued_at_local
    FROM (
        SELECT z.tz,
               CASE WHEN $issued_at_local IS NULL THEN $as_of
                    ELSE timezone(z.tz, CAST($issued_at_local AS TIMESTAMP)) END           AS issued_at_utc
        FROM (SELECT DISTINCT coalesce($campaign_timezone, timezone, $default_timezone) AS tz
              FROM candidates) z
    )
), zone_times AS (
    SELECT z.*,
           -- 23:59:59 local on (local issue date + period days), then capped at end_at: the
           -- second before the next local midnight, which is 23:59:59 on every day but one
           -- whose 23:59:59 never was (America/Nuuk springs forward at 23:00): read after
           -- the gap, that was 00:59:59 the next day.
           least(timezone(z.tz, (CAST(z.issued_at_local AS DATE) + CAST(d.period AS INTEGER) + 1)::TIMESTAMP)
                     - INTERVAL 1 SECOND,
                 d.end_at)                                                                AS expires_at_utc
    FROM zones z, d
)
SELECT row_number() OVER (ORDER BY t.tz)                                              AS slot,
       $position                                                                         AS campaign_position,
       $campaign_id                                                                      AS campaign_id,
       d.handle                                                                          AS definition_handle,
       t.tz                                                                              AS timezone,
       t.issued_at_local,
       t.issued_at_utc,
       timezone(t.tz, t.expires_at_utc)                                                  AS expires_at_local,
       t.expires_at_utc,
       'bulk:' || $campaign_id || ':' || $cycle || ':'                                   AS external_id_prefix
FROM zone_times t, d

-- part: reasons
-- One row per profile considered by this campaign (it passed the audience and the
-- definition's claim condition): every skip reason that depends on the profile alone, and
-- its allocation key. Only `duplicate_in_run` and the cap depend on other profiles or on
-- earlier campaigns: `decide` applies them. The Spark engine runs this part on each shard
-- (every row a profile's reasons read is in the profile's shard) and `decide` once.
-- `reason_before` is the first reason that outranks duplicate_in_run, `reason_after` the
-- first it outranks. `rank_key` orders allocation (priority, then id) as bytes, so shards
-- and the driver compare it the same way; null when no cap can apply ($ranked false).
CREATE OR REPLACE TABLE reasons AS
WITH d AS (
    SELECT * FROM benefit_definitions WHERE id = $definition_id
), expiring AS (
    SELECT c.profile_id, c.priority_value, c.profile_type, s.timezone AS zone, s.issued_at_utc
    FROM candidates c
    JOIN plan_slots s ON s.campaign_position = $position
                     AND s.timezone = coalesce($campaign_timezone, c.timezone, $default_timezone)
), held AS (
    -- One row per profile that ever held this definition (export or state): enough to
    -- answer "holds an active instance at issue time" and "ever held it" with one join.
    SELECT profile_id,
           bool_or(has_remaining AND expires_at IS NULL)              AS holds_open_ended,
           max(expires_at) FILTER (WHERE has_remaining)               AS last_expiry_with_uses
    FROM holdings
    WHERE definition_id = $definition_id
    GROUP BY profile_id
), this_cycle AS (
    -- Instances already carrying this campaign-and-cycle's external_id.
    SELECT external_id FROM bulk_holdings
    WHERE starts_with(external_id, 'bulk:' || $campaign_id || ':' || $cycle || ':')
)
SELECT e.profile_id,
       e.zone,
       CASE
         WHEN NOT coalesce(d.is_published, true) OR coalesce(d.is_archived, false)
              OR NOT coalesce(d.is_assignable, true)
              OR d.end_at < e.issued_at_utc                              THEN 'definition_not_issuable'
         WHEN e.profile_type IS NOT NULL AND e.profile_type <> 'active'  THEN 'profile_inactive'
         WHEN c.external_id IS NOT NULL                                  THEN 'already_issued_this_cycle'
       END                                                                          AS reason_before,
       CASE
         WHEN h.holds_open_ended OR h.last_expiry_with_uses > e.issued_at_utc
                                                                         THEN 'holds_active'
         WHEN NOT coalesce(d.is_reclaimable, true) AND h.profile_id IS NOT NULL
                                                                         THEN 'not_reclaimable'
       END                                                                          AS reason_after,
       -- Allocation order: priority (nulls last either way), then id.
       CASE WHEN $ranked THEN create_sort_key(
           CASE WHEN $descending THEN NULL ELSE e.priority_value END, 'ASC NULLS LAST',
           CASE WHEN $descending THEN e.priority_value END, 'DESC NULLS LAST',
           e.profile_id, 'ASC NULLS LAST') END                                       AS rank_key
FROM expiring e
CROSS JOIN d
LEFT JOIN this_cycle c ON c.external_id = 'bulk:' || $campaign_id || ':' || $cycle || ':' || e.profile_id
LEFT JOIN held h ON h.profile_id = e.profile_id

-- part: decide
-- The campaign's decisions from `reasons` (one row per considered profile): the first
-- reason that applies, then the cap, by rank_key over every profile not skipped.
WITH issued_earlier AS (
    SELECT DISTINCT profile_id FROM plan_rows
    WHERE definition_id = $definition_id AND decision = 'issue'
), reasoned AS (
    SELECT r.profile_id, r.zone, r.rank_key,
           coalesce(r.reason_before, CASE WHEN i.profile_id IS NOT NULL THEN 'duplicate_in_run' END,
                    r.reason_after)                                                 AS reason
    FROM reasons r
    LEFT JOIN issued_earlier i ON i.profile_id = r.profile_id
), ranked AS (
    -- Without a cap nobody is ranked: the window's sort is the costliest part of the query.
    SELECT r.*, NULL::BIGINT AS allocation_rank FROM reasoned r WHERE r.reason IS NOT NULL OR $cap IS NULL
    UNION ALL
    SELECT r.*, row_number() OVER (ORDER BY r.rank_key)                             AS allocation_rank
    FROM reasoned r WHERE r.reason IS NULL AND $cap IS NOT NULL
)
SELECT r.profile_id,
       $definition_id                                        AS definition_id,
       CASE WHEN r.reason IS NULL AND ($cap IS NULL OR r.allocation_rank <= $cap)
            THEN 'issue' ELSE 'skip' END                     AS decision,
       CASE WHEN r.reason IS NULL AND r.allocation_rank > $cap
            THEN 'allocation_exhausted' ELSE r.reason END    AS reason,
       s.slot,
       $position                                             AS campaign_position
FROM ranked r
JOIN plan_slots s ON s.campaign_position = $position AND s.timezone = r.zone
-- Inserted in plan order (campaigns come in file order): the plan is never sorted again.
ORDER BY r.profile_id

-- part: plan
-- This campaign's rows widened from its slots, which the caller has set as the list
-- variable `plan_slots` (slot n at index n). A lookup in a projection over one table keeps
-- the rows' order (DuckDB's order preservation), so `plan` stays in plan order; a join to
-- plan_slots would not. The list holds one campaign's zones only: DuckDB copies a constant
-- list for every chunk of rows it reads.
SELECT s.campaign_id, r.profile_id, r.definition_id, s.definition_handle, r.decision, r.reason,
       s.issued_at_local, s.issued_at_utc, s.timezone, s.expires_at_local, s.expires_at_utc,
       s.external_id_prefix || r.profile_id                  AS external_id,
       r.campaign_position
FROM (SELECT *, getvariable('plan_slots')[slot] AS s FROM plan_rows WHERE campaign_position = $position) r
