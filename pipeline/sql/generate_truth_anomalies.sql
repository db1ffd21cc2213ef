-- One row per finding the planted anomalies must produce (truth/anomalies.csv): the
-- category, the action, and the ids reconciliation/exceptions.parquet carries for it. The
-- instances of a flash sale make one finding between them (their definition's). `variant`
-- and `note` say what was planted.
SELECT DISTINCT
       a.category, a.action,
       CASE WHEN a.names_profile THEN gen_profile_id($seed, a.profile_index) END          AS profile_id,
       CASE a.names_benefit WHEN 'own' THEN b.id WHEN 'unknown' THEN a.unknown_benefit_id END AS benefit_id,
       a.definition_id,
       CASE a.names_redemption WHEN 'r1' THEN r1.redemption_id WHEN 'r2' THEN r2.redemption_id
                               WHEN 'unknown' THEN a.unknown_redemption_id END          AS redemption_id,
       CASE a.names_transaction
            WHEN 'lone' THEN a.lone_external_id
            WHEN 'r1' THEN r1.location_external_id || '-' || lpad(r1.redemption_id::VARCHAR, 9, '0') END
                                                                                       AS transaction_external_id,
       a.variant, a.note
FROM g_anomalies a
LEFT JOIN g_benefits b ON b._anomaly_no = a.anomaly_no
LEFT JOIN g_redemption_events r1 ON r1._anomaly_no = a.anomaly_no AND r1._which = 1
LEFT JOIN g_redemption_events r2 ON r2._anomaly_no = a.anomaly_no AND r2._which = 2
ORDER BY category, action, variant, profile_id NULLS FIRST, definition_id, benefit_id
