-- One row per benefits API call, from `issued` (the plan's `issue` rows in plan order, so
-- rowid is the position): $per_call benefits a call (1 with --single).
-- `benefits` is the call's benefits as JSON objects joined by commas; every value is
-- encoded by to_json. The idempotency key hashes the call's external_ids, so the same plan
-- always yields the same keys.
SELECT rowid // $per_call + 1                                                   AS line_no,
       'benefits-' || sha256(string_agg(external_id, '|' ORDER BY rowid))[1:32] AS idempotency_key,
       string_agg(to_json(struct_pack(
           benefit_definition_id := definition_id,
           profile_id := profile_id,
           issued_at := strftime(issued_at_local, '%Y-%m-%d %H:%M:%S'),
           timezone := timezone,
           external_id := external_id
       )), ',' ORDER BY rowid)                                                  AS benefits
FROM issued
GROUP BY ALL
