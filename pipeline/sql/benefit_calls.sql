-- One row per benefits API call: the plan's `issue` rows in plan order (campaign, then
-- profile), $per_call benefits a call (1 with --single). The idempotency key hashes the
-- call's external_ids, so the same plan always yields the same keys.
WITH issued AS (
    SELECT *, (row_number() OVER (ORDER BY campaign_position, profile_id) - 1) // $per_call AS call_no
    FROM plan
    WHERE decision = 'issue'
)
SELECT call_no + 1                                                              AS line_no,
       'benefits-' || sha256(string_agg(external_id, '|' ORDER BY campaign_position, profile_id))[1:32]
                                                                                AS idempotency_key,
       list(struct_pack(
           benefit_definition_id := definition_id,
           profile_id := profile_id,
           issued_at := strftime(issued_at_local, '%Y-%m-%d %H:%M:%S'),
           timezone := timezone,
           external_id := external_id
       ) ORDER BY campaign_position, profile_id)                                AS benefits
FROM issued
GROUP BY call_no
