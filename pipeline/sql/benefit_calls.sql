-- One row per benefits API call, from `issued` (each `issue` row of the plan, in plan order,
-- as its external_id and its benefit already rendered as a JSON object, so rowid is the
-- position): $per_call benefits a call (1 with --single).
-- `benefits` is the call's benefit objects joined by commas. The idempotency key hashes the
-- run's clock ($as_of) and the call's external_ids: the same plan of the same night always
-- yields the same keys (a rerun is byte-identical), and a benefit issued again on a later
-- night, after Omneo refused it, travels under a key Omneo has never answered.
-- string_agg over ready-made text: rendering JSON inside the aggregate costs twice as much.
SELECT position + 1                                                                     AS line_no,
       'benefits-' || sha256($as_of || '|' || string_agg(external_id, '|' ORDER BY rowid))[1:32] AS idempotency_key,
       string_agg(benefit, ',' ORDER BY rowid)                                          AS benefits
FROM (SELECT rowid // $per_call AS position, rowid, external_id, benefit FROM issued)
GROUP BY ALL
