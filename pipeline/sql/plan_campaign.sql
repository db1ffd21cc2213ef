-- One row per profile considered by one campaign (it passed the audience and the
-- definition's claim condition): the decision and the first reason that applies (SPEC §4).
-- Reads `candidates` (this campaign's rule results per profile), `profile_context`,
-- `benefit_definitions`, `holdings` and the rows `plan` already has from earlier campaigns.
WITH d AS (
    SELECT * FROM benefit_definitions WHERE id = $definition_id
), considered AS (
    SELECT c.profile_id, c.priority_value, p.profile_type,
           coalesce($campaign_timezone, p.timezone, $default_timezone) AS tz
    FROM candidates c
    JOIN profile_context p ON p.id = c.profile_id
    WHERE c.in_audience AND c.condition_ok
), timed AS (
    SELECT c.*,
           -- issued_at is a local wall time in the benefit's zone; default: as_of.
           coalesce(CAST($issued_at_local AS TIMESTAMP), timezone(c.tz, $as_of))      AS issued_at_local,
           CASE WHEN $issued_at_local IS NULL THEN $as_of
                ELSE timezone(c.tz, CAST($issued_at_local AS TIMESTAMP)) END            AS issued_at_utc
    FROM considered c
), expiring AS (
    SELECT t.*,
           -- 23:59:59 local on (local issue date + period days), then capped at end_at.
           least(timezone(t.tz, (CAST(t.issued_at_local AS DATE) + CAST(d.period AS INTEGER)) + TIME '23:59:59'),
                 d.end_at)                                                              AS expires_at_utc
    FROM timed t, d
), reasoned AS (
    SELECT e.*,
           'bulk:' || $campaign_id || ':' || $cycle || ':' || e.profile_id                  AS external_id,
           CASE
             WHEN NOT coalesce(d.is_published, true) OR coalesce(d.is_archived, false)
                  OR NOT coalesce(d.is_assignable, true)
                  OR d.end_at < e.issued_at_utc                              THEN 'definition_not_issuable'
             WHEN e.profile_type IS NOT NULL AND e.profile_type <> 'active'  THEN 'profile_inactive'
             WHEN EXISTS (SELECT 1 FROM holdings h
                          WHERE h.external_id = 'bulk:' || $campaign_id || ':' || $cycle || ':' || e.profile_id)
                                                                             THEN 'already_issued_this_cycle'
             WHEN EXISTS (SELECT 1 FROM plan p
                          WHERE p.profile_id = e.profile_id AND p.definition_id = $definition_id
                            AND p.decision = 'issue')                        THEN 'duplicate_in_run'
             WHEN EXISTS (SELECT 1 FROM holdings h
                          WHERE h.profile_id = e.profile_id AND h.definition_id = $definition_id
                            AND h.has_remaining
                            AND (h.expires_at IS NULL OR h.expires_at > e.issued_at_utc))
                                                                             THEN 'holds_active'
             WHEN NOT coalesce(d.is_reclaimable, true)
                  AND EXISTS (SELECT 1 FROM holdings h
                              WHERE h.profile_id = e.profile_id AND h.definition_id = $definition_id)
                                                                             THEN 'not_reclaimable'
           END                                                                          AS reason
    FROM expiring e, d
), ranked AS (
    SELECT r.*,
           -- Allocation order among the profiles not skipped above: priority, then id.
           CASE WHEN r.reason IS NULL THEN row_number() OVER (
               PARTITION BY r.reason IS NULL
               ORDER BY CASE WHEN $descending THEN NULL ELSE r.priority_value END ASC NULLS LAST,
                        CASE WHEN $descending THEN r.priority_value END DESC NULLS LAST,
                        r.profile_id) END                                               AS allocation_rank
    FROM reasoned r
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
       timezone(r.tz, r.expires_at_utc)                      AS expires_at_local,
       r.expires_at_utc,
       r.external_id,
       $position                                             AS campaign_position
FROM ranked r, d
ORDER BY r.profile_id
