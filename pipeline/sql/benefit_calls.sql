-- One row per benefits API call, from `issued` (each `issue` row of the plan, in plan order,
-- as its external_id and its benefit already rendered as a JSON object, so rowid is the
-- position): $per_call benefits a call (1 with --single).
-- `benefits` is the call's benefit objects joined by commas. The idempotency key hashes the
-- call's external_ids, so the same plan always yields the same keys. Both lists are built
-- by one ordered aggregate each over ready-made text: rendering JSON inside the aggregate
-- costs twice as much at 3M benefits.
SELECT position + 1                                                     AS line_no,
       'benefits-' || sha256(array_to_string(external_ids, '|'))[1:32]  AS idempotency_key,
       array_to_string(benefits, ',')                                   AS benefits
FROM (
    SELECT rowid // $per_call                AS position,
           list(external_id ORDER BY rowid)  AS external_ids,
           list(benefit ORDER BY rowid)      AS benefits
    FROM issued
    GROUP BY ALL
)
