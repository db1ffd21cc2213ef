-- One row per benefit instance in the export: what Omneo says was redeemed and returned,
-- and what should be left. computed_remaining is null when max_redemptions is (unlimited).
-- Built right after recon_items, it also stands in for `benefits` in the later statements
-- (one row per accepted benefit: every benefit names an accepted definition), so the
-- benefits Parquet file is read once; `timezone` is for the payloads, not written.
WITH per_benefit AS (
    SELECT benefit_id,
           coalesce(sum(count) FILTER (WHERE kind = 'redeem'), 0)                         AS redeemed,
           coalesce(sum(returned), 0) + coalesce(sum(count) FILTER (WHERE kind = 'return'), 0) AS returned
    FROM recon_items
    GROUP BY benefit_id
), figures AS (
    SELECT b.id                                   AS benefit_id,
           b.profile_id,
           b.benefit_definition_id                AS definition_id,
           d.handle                               AS definition_handle,
           b.issued_at,
           b.expires_at,
           d.max_redemptions,
           coalesce(p.redeemed, 0)                AS redeemed,
           coalesce(p.returned, 0)                AS returned,
           coalesce(p.redeemed, 0) - coalesce(p.returned, 0) AS net_redeemed,
           b.redemptions_remaining                AS reported_remaining,
           b.timezone
    FROM benefits b
    JOIN benefit_definitions d ON d.id = b.benefit_definition_id
    LEFT JOIN per_benefit p ON p.benefit_id = b.id
)
SELECT benefit_id, profile_id, definition_id, definition_handle, issued_at, expires_at, max_redemptions,
       redeemed, returned, net_redeemed,
       max_redemptions - net_redeemed              AS computed_remaining,
       reported_remaining,
       CASE WHEN net_redeemed > max_redemptions THEN 'over_redeemed'
            WHEN net_redeemed = max_redemptions THEN 'fully_redeemed'
            WHEN expires_at < $as_of THEN 'expired'
            ELSE 'active' END                      AS status,
       timezone
FROM figures
