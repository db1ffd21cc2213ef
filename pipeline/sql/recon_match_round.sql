-- One round of nearest-in-time matching: the pairs that are each other's first choice.
-- Edges are ordered by (time apart, redemption id, item, usage time, usage); a pair that is
-- first for both its usage and its item is taken. Repeating rounds until none is left gives
-- exactly the greedy matching in that order, independent of input order.
WITH open AS (
    SELECT c.* FROM recon_candidates c
    WHERE NOT EXISTS (SELECT 1 FROM recon_pairs p
                      WHERE p.usage_source_file = c.usage_source_file AND p.usage_source_row = c.usage_source_row)
      AND NOT EXISTS (SELECT 1 FROM recon_pairs p
                      WHERE p.redemption_id = c.redemption_id AND p.item_position = c.item_position)
), ranked AS (
    SELECT *,
           row_number() OVER (PARTITION BY usage_source_file, usage_source_row
                              ORDER BY seconds_apart, redemption_id, item_position) AS usage_choice,
           row_number() OVER (PARTITION BY redemption_id, item_position
                              ORDER BY seconds_apart, transacted_at, usage_source_file, usage_source_row) AS item_choice
    FROM open
)
SELECT usage_source_file, usage_source_row, redemption_id, item_position, 'nearest' AS paired_by
FROM ranked
WHERE usage_choice = 1 AND item_choice = 1
