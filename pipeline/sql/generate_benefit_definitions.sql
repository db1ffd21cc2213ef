-- One row per benefit definition (benefit_definitions.csv): the catalog of
-- generate_definitions.sql with the limits that depend on the data: a global cap above what
-- was redeemed (flash sales keep their small fixed caps), and allocations of issued-so-far
-- plus $allocation_headroom left.
WITH issued AS (
    SELECT benefit_definition_id AS id, count(*) AS instances FROM g_benefits GROUP BY ALL
), redeemed AS (
    SELECT b.benefit_definition_id AS id,
           sum(CASE WHEN e.type = 'reversal' THEN -1 ELSE 1 END) - sum(e.return_rows) AS standing
    FROM g_redemption_events e JOIN g_benefits b ON b.id = e.benefit_id
    GROUP BY ALL
)
SELECT c.id, c.handle, c.name, c.period, c.max_redemptions,
       CASE WHEN c._global_cap THEN greatest(10, ceil(coalesce(r.standing, 0) * 1.25 / 10) * 10)::BIGINT
            ELSE c.max_global_redemptions END                               AS max_global_redemptions,
       c.is_published, c.is_archived, c.is_assignable, c.is_claimable, c.is_reclaimable,
       c.claim_period_start_at, c.claim_period_end_at, c.claim_condition, c.end_at,
       CASE WHEN c._allocated THEN coalesce(i.instances, 0) + $allocation_headroom END::BIGINT AS total_allocations,
       CASE WHEN c._allocated THEN $allocation_headroom END::BIGINT        AS total_allocations_remaining,
       c.redeem_code_pos, c.redeem_code_online, c.tags,
       row_number() OVER (ORDER BY c.id) - 1                                AS _seq,
       c._zone
FROM g_definition_catalog c
LEFT JOIN issued i USING (id)
LEFT JOIN redeemed r USING (id)
ORDER BY c.id
