-- One row per return of uses against an Omneo redemption (returns.csv): the background
-- returns one whole use after a refund or an exchange; return_exceeds plants two returns of
-- one use against a redemption of one.
SELECT redemption_id, 1::BIGINT AS count, returned_at,
       row_number() OVER (ORDER BY returned_at, redemption_id) - 1 AS _seq,
       _zone
FROM (SELECT redemption_id, returned_at + to_days(k::INTEGER) AS returned_at, _zone
      FROM g_redemption_events, range(return_rows) t(k)
      WHERE return_rows > 0)
ORDER BY returned_at, redemption_id
