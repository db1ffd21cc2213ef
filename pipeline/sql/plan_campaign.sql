-- One row per profile considered by one campaign (it passed the audience and the
-- definition's claim condition): the decision and the first reason that applies (contract §4).
-- Reads `candidates` (the profiles passing this campaign's rules, with their type and zone),
-- `benefit_definitions`, `holdings`, `bulk_holdings` (the holdings' external_ids that start
-- with 'bulk:') and the rows `plan` already has from earlier campaigns.
WITH d AS (
    SELECT * FROM benefit_definitions WHERE id = $definition_id
), considered AS (
    SELECT c.profile_id, c.priority_value, c.profile_type,
           coalesce($campaign_timezone, c.timezone, $default_timezone) AS tz
    FROM candidates c
), zones AS (
    -- Every time depends only on the zone (issued_at is campaign-wide): convert once per
    -- zone, not once per profile. ICU conversions are the costly part of this query.
    -- issued_at is a local wall time in the benefit's zone; default: as_of. The local time
    -- is always the wall time of the issue instant: an issued_at in a DST gap (02:30 the
    -- night clocks go 02:00 -> 03:00) is the 03:30 its instant reads, not a time that never was.
    SELECT tz, issued_at_utc, timezone(tz, issued_at_utc)                                AS issued_at_local
    FROM (
        SELECT z.tz,
               CASE WHEN $issued_at_local IS NULL THEN $as_of
                    ELSE timezone(z.tz, CAST($issued_at_local AS TIMESTAMP)) END           AS issued_at_utc
        FROM (SELECT DISTINCT tz FROM considered) z
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
), expiring AS (
    SELECT c.*, t.issued_at_local, t.issued_at_utc, t.expires_at_utc,
           timezone(t.tz, t.expires_at_utc)                                              AS expires_at_local
    FROM considered c JOIN zone_times t ON t.tz = c.tz
), held AS (
    -- One row per profile that ever held this definition (export or state): enough to
    -- answer "holds an active instance at issue time" and "ever held it" with one join.
    SELECT profile_id,
           bool_or(has_remaining AND expires_at IS NULL)              AS holds_open_ended,
           max(expires_at) FILTER (WHERE has_remaining)               AS last_expiry_with_uses
    FROM holdings
    WHERE definition_id = $definition_id
    GROUP BY profile_id
), issued_earlier AS (
    SELECT DISTINCT profile_id FROM plan
    WHERE definition_id = $definition_id AND decision = 'issue'
), this_cycle AS (
    -- Instances already carrying this campaign-and-cycle's external_id.
    SELECT external_id FROM bulk_holdings
    WHERE starts_with(external_id, 'bulk:' || $campaign_id || ':' || $cycle || ':')
), reasoned AS (
    SELECT e.*,
           'bulk:' || $campaign_id || ':' || $cycle || ':' || e.profile_id                  AS external_id,
           CASE
             WHEN NOT coalesce(d.is_published, true) OR coalesce(d.is_archived, false)
                  OR NOT coalesce(d.is_assignable, true)
                  OR d.end_at < e.issued_at_utc                              THEN 'definition_not_issuable'
             WHEN e.profile_type IS NOT NULL AND e.profile_type <> 'active'  THEN 'profile_inactive'
             WHEN c.external_id IS NOT NULL                                  THEN 'already_issued_this_cycle'
             WHEN i.profile_id IS NOT NULL                                   THEN 'duplicate_in_run'
             WHEN h.holds_open_ended OR h.last_expiry_with_uses > e.issued_at_utc
                                                                             THEN 'holds_active'
             WHEN NOT coalesce(d.is_reclaimable, true) AND h.profile_id IS NOT NULL
                                                                             THEN 'not_reclaimable'
           END                                                                          AS reason
    FROM expiring e
    CROSS JOIN d
    LEFT JOIN this_cycle c ON c.external_id = 'bulk:' || $campaign_id || ':' || $cycle || ':' || e.profile_id
    LEFT JOIN issued_earlier i ON i.profile_id = e.profile_id
    LEFT JOIN held h ON h.profile_id = e.profile_id
), ranked AS (
    -- Without a cap nobody is ranked: the window's sort is the costliest part of the query.
    SELECT r.*, NULL::BIGINT AS allocation_rank FROM reasoned r WHERE r.reason IS NOT NULL OR $cap IS NULL
    UNION ALL
    -- Allocation order among the profiles not skipped above: priority, then id.
    SELECT r.*,
           row_number() OVER (
               ORDER BY CASE WHEN $descending THEN NULL ELSE r.priority_value END ASC NULLS LAST,
                        CASE WHEN $descending THEN r.priority_value END DESC NULLS LAST,
                        r.profile_id)                                                   AS allocation_rank
    FROM reasoned r WHERE r.reason IS NULL AND $cap IS NOT NULL
)
SELECT $campaign_id                                          AS campaign_id,
       r.profile_id,
       d.id                                                  AS definition_id,
       d.handle                                              AS definition_handle,
       CASE WHEN r.reason IS NULL AND ($cap IS NULL OR r.allocation_rank <= $cap)
            THEN 'issue' ELSE 'skip' END                     AS decision,
       CASE WHEN r.reason IS NULL AND r.allocation_rank > $cap
            THEN 'allocation_exhausted' ELSE r.reason END    AS reason,
       r.issued_at_local,
       r.issued_at_utc,
       r.tz                                                  AS timezone,
       r.expires_at_local,
       r.expires_at_utc,
       r.external_id,
       $position                                             AS campaign_position
FROM ranked r, d
-- Inserted in plan order (campaigns come in file order): the plan is never sorted again.
ORDER BY r.profile_id
