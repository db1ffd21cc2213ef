-- One row per Omneo redemption item that names a benefit: from redemption_items (nested
-- or a file of its own) and from the flat form (a redemption's benefit_id and count, when
-- the redemption has no items of its own). `kind` is 'return' for items of a return or
-- reversal redemption (they count against their benefit), else 'redeem'.
-- Returns (rows of `returns`) are applied to a redemption's redeem items in item order,
-- each up to its count: `returned` is what an item took, `returns_left_over` what none could.
WITH listed AS (
    SELECT id AS redemption_item_id, redemption_id, item_id AS benefit_id, coalesce(count, 1) AS count
    FROM redemption_items
    WHERE type = 'benefit'
), flat AS (
    SELECT NULL::BIGINT AS redemption_item_id, id AS redemption_id, benefit_id, coalesce(count, 1) AS count
    FROM redemptions
    WHERE benefit_id IS NOT NULL
      AND id NOT IN (SELECT redemption_id FROM redemption_items)
), items AS (
    SELECT x.*,
           r.profile_id                                                     AS redemption_profile_id,
           r.created_at                                                     AS redeemed_at,
           CASE WHEN lower(coalesce(r.type, '')) IN ('return', 'reversal') THEN 'return'
                ELSE 'redeem' END                                           AS kind,
           row_number() OVER (PARTITION BY x.redemption_id
                              ORDER BY x.redemption_item_id NULLS LAST, x.benefit_id) AS item_position
    FROM (SELECT * FROM listed UNION ALL SELECT * FROM flat) x
    JOIN redemptions r ON r.id = x.redemption_id
), returned AS (
    SELECT redemption_id, sum(count) AS returns FROM returns GROUP BY redemption_id
), applied AS (
    -- Only redemptions with returns need the running sums (a few percent of the items): on
    -- every other item `returned` and `returns_left_over` are 0, as the formulas below give.
    SELECT i.redemption_id, i.item_position,
           t.returns                                                        AS redemption_returns,
           coalesce(sum(i.count) FILTER (WHERE i.kind = 'redeem') OVER (
               PARTITION BY i.redemption_id ORDER BY i.item_position
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)          AS redeemed_before,
           sum(i.count) FILTER (WHERE i.kind = 'redeem') OVER (PARTITION BY i.redemption_id) AS redeemed_total,
           i.item_position = max(i.item_position) FILTER (WHERE i.kind = 'redeem')
                                 OVER (PARTITION BY i.redemption_id)         AS last_redeem_item
    FROM items i
    JOIN returned t ON t.redemption_id = i.redemption_id
)
SELECT i.redemption_item_id, i.redemption_id, i.item_position, i.benefit_id, i.count, i.kind,
       i.redemption_profile_id, i.redeemed_at,
       CASE WHEN i.kind = 'redeem' AND a.redemption_id IS NOT NULL
            THEN greatest(0, least(i.count, a.redemption_returns - a.redeemed_before)) ELSE 0 END AS returned,
       CASE WHEN i.kind = 'redeem' AND a.last_redeem_item
            THEN greatest(0, a.redemption_returns - a.redeemed_total) ELSE 0 END              AS returns_left_over
FROM items i
LEFT JOIN applied a ON a.redemption_id = i.redemption_id AND a.item_position = i.item_position
