-- One row per completed POS sale up to the run's clock, with the profile its spend goes to: a benefit
-- usage row of the same sale is not spend. Reads `context_sales` (the POS rows in scope).
-- The sale counts once, with its largest row's total and profile (ties by profile id, so
-- the pick is stable): the max of (has total, total, profile, time) is that row, found by a
-- hash aggregate rather than a sort of every sale. The Spark engine runs this on shards of
-- sales (by external_id), then routes each sale to its profile's shard.
SELECT CASE WHEN struct_extract(top, 1) THEN CAST(struct_extract(top, 2) AS DECIMAL(38, 6)) END AS total,
       struct_extract(top, 3)                                                   AS profile_id,
       struct_extract(top, 4)                                                   AS transacted_at
FROM (
    SELECT max((total IS NOT NULL, coalesce(total, 0), profile_id, transacted_at)) AS top
    FROM context_sales
    WHERE coalesce(status, 'completed') = 'completed'
      AND transacted_at <= $as_of
      AND profile_id IS NOT NULL
    GROUP BY external_id
)
