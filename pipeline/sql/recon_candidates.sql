-- Every (usage, redeem item) of the same benefit within the window, neither paired yet.
-- $window_seconds: --window-minutes × 60; the edge itself is inside the window.
SELECT u.usage_source_file, u.usage_source_row, u.transacted_at, i.redemption_id, i.item_position,
       abs(epoch(u.transacted_at) - epoch(i.redeemed_at)) AS seconds_apart
FROM recon_usages u
JOIN recon_items i ON i.benefit_id = u.benefit_id AND i.kind = 'redeem'
WHERE abs(epoch(u.transacted_at) - epoch(i.redeemed_at)) <= $window_seconds
  AND NOT EXISTS (SELECT 1 FROM recon_pairs p
                  WHERE p.usage_source_file = u.usage_source_file AND p.usage_source_row = u.usage_source_row)
  AND NOT EXISTS (SELECT 1 FROM recon_pairs p
                  WHERE p.redemption_id = i.redemption_id AND p.item_position = i.item_position)
