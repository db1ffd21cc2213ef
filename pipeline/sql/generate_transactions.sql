-- One row per POS transaction line (transactions.csv), in time order: the sale behind each
-- Omneo redemption the till reported (naming what it used by redemption_id, benefit_id, an
-- instance's code or a definition's code), the planted sales no redemption stands for,
-- and ordinary sales that used no benefit (about 0.25 per profile over two years, some
-- anonymous, a few voided or refunded).
-- $seed, $as_of, $profiles, $sales: how many ordinary sales.
WITH usages AS (
    SELECT location_external_id || '-' || lpad(redemption_id::VARCHAR, 9, '0') AS external_id,
           usage_at                                                           AS transacted_at,
           usage_profile_id                                                   AS profile_id,
           location_external_id, total,
           usage_status                                                       AS status,
           CASE WHEN usage_form = 'redemption_id' THEN redemption_id END     AS redemption_id,
           CASE WHEN usage_form IN ('redemption_id', 'benefit_id') THEN benefit_id END AS benefit_id,
           usage_code                                                         AS redeem_code,
           _zone
    FROM g_redemption_events
    WHERE has_usage
), lone AS (
    -- Planted sales with no Omneo redemption behind them.
    SELECT a.lone_external_id, a.lone_usage_at, gen_profile_id($seed, a.profile_index), a.lone_store,
           round(15 + 250 * pow(gen_u($seed, a.anomaly_no, 'lone_total'), 2), 2),
           a.usage_status,
           CASE WHEN a.usage_form = 'unknown_redemption' THEN a.unknown_redemption_id END,
           CASE a.usage_form WHEN 'benefit_id' THEN b.id WHEN 'unknown_benefit' THEN a.unknown_benefit_id END,
           CASE a.usage_form WHEN 'instance_code' THEN b.redeem_code_pos
                             WHEN 'definition_code' THEN d.redeem_code_pos
                             WHEN 'unknown_code' THEN a.unknown_code END,
           zone
    FROM (SELECT *, coalesce(gen_profile_zone($seed, profile_index), 'Australia/Melbourne') AS zone
          FROM g_anomalies WHERE lone_usage_at IS NOT NULL) a
    LEFT JOIN g_benefits b ON b._anomaly_no = a.anomaly_no
    LEFT JOIN g_definition_catalog d ON d.id = a.definition_id
), sales AS (
    SELECT store || '-' || lpad((100000000 + k)::VARCHAR, 9, '0'),
           -- Over two years, more of them recent, never before the buyer joined.
           $as_of - to_seconds(floor(86400 * least(730 * pow(gen_u($seed, k, 'sale_at'), 1.3),
                                                   gen_profile_tenure_days($seed, p)))::BIGINT),
           CASE WHEN gen_u($seed, k, 'anonymous') >= 0.07 THEN gen_profile_id($seed, p) END,
           store,
           round(8 + 300 * pow(gen_u($seed, k, 'sale_total'), 2.2), 2),
           CASE WHEN gen_u($seed, k, 'sale_status') < 0.94 THEN 'completed'
                WHEN gen_u($seed, k, 'sale_status') < 0.97 THEN 'refunded' ELSE 'voided' END,
           NULL::BIGINT, NULL::BIGINT, NULL::VARCHAR,
           coalesce(gen_profile_zone($seed, p), 'Australia/Melbourne')
    FROM (SELECT k, p, gen_store(gen_profile_zone($seed, p), gen_u($seed, k, 'sale_store')) AS store
          FROM (SELECT k, (hash($seed, k, 'buyer') % $profiles)::BIGINT AS p FROM range($sales) t(k)))
)
SELECT *, row_number() OVER (ORDER BY transacted_at, external_id) - 1 AS _seq
FROM (SELECT * FROM usages UNION ALL SELECT * FROM lone UNION ALL SELECT * FROM sales)
ORDER BY _seq
