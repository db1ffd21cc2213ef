-- One row per Omneo redemption (redemptions.csv): a use of a benefit, or a reversal of one.
-- Most list their benefit in redemption_items; the flat ones name it here (benefit_id and
-- count), as a flat export does. transaction_id is the POS sale's external_id (a reversal
-- has none).
SELECT redemption_id                                                   AS id,
       profile_id, created_at, type,
       total::DOUBLE                                                   AS total,
       location_external_id || '-' || lpad(redemption_id::VARCHAR, 9, '0') AS transaction_id,
       CASE WHEN type = 'redeem' THEN 'omneo-r-' || redemption_id END AS external_id,
       CASE WHEN form = 'flat' THEN benefit_id END                    AS benefit_id,
       CASE WHEN form = 'flat' THEN 1 END::BIGINT                     AS count,
       redemption_id - 5000001                                         AS _seq,
       _zone
FROM g_redemption_events
ORDER BY redemption_id
