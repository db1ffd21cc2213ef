-- One row per benefit instance (benefits.csv), as Omneo exports it. redemptions_remaining
-- is what Omneo would report: the definition's max_redemptions less the uses that stand
-- (redeemed, less returned, less reversed), null when uses are unlimited; a planted
-- instance reports what its anomaly says (remaining_mismatch plants a wrong figure).
WITH used AS (
    SELECT benefit_id,
           sum(CASE WHEN type = 'reversal' THEN -1 ELSE 1 END) - sum(return_rows) AS standing
    FROM g_redemption_events
    WHERE _origin = 'background'
    GROUP BY benefit_id
)
SELECT b.id, b.profile_id, b.benefit_definition_id, b.issued_at, b.expires_at, b.timezone, b.external_id,
       b.claimed_at,
       CASE WHEN b._origin = 'planted' THEN a.remaining
            ELSE b._max_redemptions - coalesce(u.standing, 0) END  AS redemptions_remaining,
       b.redeem_code_pos, b.redeem_code_online,
       b._seq, b._zone, b._origin, b._anomaly_no
FROM g_instances b
LEFT JOIN used u ON u.benefit_id = b.id
LEFT JOIN g_anomalies a ON a.anomaly_no = b._anomaly_no
ORDER BY b._seq
