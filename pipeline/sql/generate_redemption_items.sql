-- One row per item of an Omneo redemption (redemption_items.csv): the benefit it used
-- (type benefit, item_id = the benefit instance) and, for some, points spent with it
-- (type point, count = points). Flat redemptions have no items.
SELECT 7000000 + row_number() OVER (ORDER BY redemption_id, position) AS id,
       redemption_id, type, item_id, count,
       row_number() OVER (ORDER BY redemption_id, position) - 1       AS _seq,
       _zone
FROM (
    SELECT redemption_id, 1 AS position, 'benefit' AS type, benefit_id AS item_id, 1::BIGINT AS count, _zone
    FROM g_redemption_events WHERE form = 'items'
    UNION ALL
    SELECT redemption_id, 2, 'point', 1, (100 * (1 + floor(10 * gen_u($seed, redemption_id, 'points'))))::BIGINT, _zone
    FROM g_redemption_events WHERE form = 'items' AND points_item
)
ORDER BY redemption_id, position
