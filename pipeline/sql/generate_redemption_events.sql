-- One row per Omneo redemption the generator records, with the POS sale that used the
-- benefit (when the till sent one), and what happened after (returns). redemptions,
-- redemption_items, returns and the usage rows of transactions are projections of it.
-- $seed, $as_of.
--
-- Background redemptions are clean by construction: uses stay within the benefit's limit,
-- fall inside issued_at … expires_at, are at least 36 minutes apart, and each has a POS sale
-- 5 to 120 s later naming the benefit in one of the contract's forms, except a benefit's single
-- use in the last 20 hours, whose sale the POS export does not show yet (inside the 24 h
-- grace). Returns are whole (a refunded sale is fully returned), and reversals undo one use
-- of a sale that stood.
WITH spans AS (
    SELECT b.*,
           b.issued_at + INTERVAL 1 HOUR                                         AS lo,
           least(coalesce(b.expires_at, $as_of), $as_of) - INTERVAL 1 HOUR        AS hi
    FROM g_instances b
    WHERE b._origin = 'background'
), counted AS (
    SELECT *,
           -- Three hours of validity per use at least, so uses never crowd each other.
           least(wanted, greatest(0, floor((epoch(hi) - epoch(lo)) / 10800)))::BIGINT AS uses
    FROM (SELECT *,
                 CASE WHEN _max_redemptions = 1 THEN (gen_u($seed, id, 'uses') < 0.4)::BIGINT
                      ELSE least(coalesce(_max_redemptions, 3),
                                 CASE WHEN gen_u($seed, id, 'uses') < 0.5 THEN 0 WHEN gen_u($seed, id, 'uses') < 0.8 THEN 1
                                      WHEN gen_u($seed, id, 'uses') < 0.92 THEN 2 ELSE 3 END) END AS wanted
          FROM spans)
), uses AS (
    SELECT c.*, unnest(range(c.uses)) AS j FROM counted c WHERE c.uses > 0
), background AS (
    SELECT 'background' AS _origin, NULL::BIGINT AS _anomaly_no, u.j AS _which,
           u.id AS benefit_id, u.profile_id, u._zone, u.redeem_code_pos, u.redeem_code_online,
           u._definition_code_pos, u._definition_code_online,
           -- Use j of n sits inside the j-th n-th of the span: uses stay well apart.
           u.lo + to_seconds(floor((u.j + 0.1 + 0.8 * gen_u($seed, u.id * 4 + u.j, 'at'))
                                   * (epoch(u.hi) - epoch(u.lo)) / u.uses)::BIGINT)     AS created_at,
           u.uses, u.id * 4 + u.j AS e
    FROM uses u
), background_events AS (
    SELECT b.*,
           'redeem' AS type,
           CASE WHEN gen_u($seed, e, 'form') < 0.8 THEN 'items' ELSE 'flat' END        AS form,
           gen_u($seed, e, 'points') < 0.15                                           AS points_item,
           NOT (uses = 1 AND created_at > $as_of - INTERVAL 20 HOUR)                   AS has_usage,
           created_at + to_seconds((5 + floor(115 * gen_u($seed, e, 'lag')))::BIGINT) AS usage_at,
           CASE WHEN gen_u($seed, e, 'usage_form') < 0.25 THEN 'redemption_id'
                WHEN gen_u($seed, e, 'usage_form') < 0.6 THEN 'benefit_id'
                WHEN gen_u($seed, e, 'usage_form') < 0.8 AND redeem_code_pos IS NOT NULL THEN 'instance_code'
                WHEN gen_u($seed, e, 'usage_form') >= 0.8
                     AND coalesce(_definition_code_pos, _definition_code_online) IS NOT NULL THEN 'definition_code'
                ELSE 'benefit_id' END                                                 AS usage_form,
           gen_store(_zone, gen_u($seed, e, 'store'))                                 AS location_external_id,
           round(15 + 250 * pow(gen_u($seed, e, 'total'), 2), 2)                      AS total,
           created_at + to_seconds((3600 + floor(259200 * gen_u($seed, e, 'returned')))::BIGINT) AS maybe_returned_at,
           gen_u($seed, e, 'return') < 0.04                                           AS wants_return,
           gen_u($seed, e, 'reversal') < 0.01                                         AS wants_reversal,
           gen_u($seed, e, 'anonymous') < 0.03                                        AS anonymous_sale,
           gen_u($seed, e, 'refund') < 0.6                                            AS refunded
    FROM background b
), background_redeems AS (
    SELECT _origin, _anomaly_no, _which, benefit_id, profile_id, _zone, created_at, type, form, points_item,
           has_usage, usage_at,
           CASE WHEN returned THEN (CASE WHEN refunded THEN 'refunded' ELSE 'completed' END)
                ELSE 'completed' END                                                  AS usage_status,
           usage_form,
           -- A sale found by definition code needs the profile; others are sometimes anonymous.
           CASE WHEN anonymous_sale AND usage_form <> 'definition_code' THEN NULL ELSE profile_id END AS usage_profile_id,
           location_external_id, total,
           CASE usage_form
                WHEN 'instance_code' THEN CASE WHEN location_external_id = 'ONLINE'
                                               THEN coalesce(redeem_code_online, redeem_code_pos)
                                               ELSE redeem_code_pos END
                WHEN 'definition_code' THEN CASE WHEN location_external_id = 'ONLINE'
                                                 THEN coalesce(_definition_code_online, _definition_code_pos)
                                                 ELSE coalesce(_definition_code_pos, _definition_code_online) END
           END                                                                        AS usage_code,
           CASE WHEN returned THEN maybe_returned_at END                             AS returned_at,
           CASE WHEN returned THEN 1 ELSE 0 END                                      AS return_rows,
           reversed
    FROM (SELECT *,
                 has_usage AND wants_return AND maybe_returned_at <= $as_of - INTERVAL 1 HOUR AS returned,
                 has_usage AND NOT wants_return AND wants_reversal
                     AND created_at + INTERVAL 3 HOUR <= $as_of - INTERVAL 1 HOUR           AS reversed
          FROM background_events)
), background_reversals AS (
    -- Omneo's reversal of a use: an item that counts against the benefit; no POS sale.
    SELECT _origin, _anomaly_no, _which + 100, benefit_id, profile_id, _zone, created_at + INTERVAL 3 HOUR,
           'reversal', CASE WHEN gen_u($seed, benefit_id * 4 + _which, 'reversal_form') < 0.5 THEN 'items' ELSE 'flat' END,
           false, false, NULL::TIMESTAMPTZ, NULL, NULL, NULL, NULL, NULL, NULL,
           NULL::TIMESTAMPTZ, 0, false
    FROM background_redeems
    WHERE reversed
), planted AS (
    SELECT a.*, b.id AS own_benefit_id, b.redeem_code_pos AS own_code,
           gen_profile_id($seed, a.profile_index) AS own_profile_id,
           gen_profile_id($seed, a.other_profile_index) AS other_profile_id,
           coalesce(gen_profile_zone($seed, a.profile_index), 'Australia/Melbourne') AS zone
    FROM g_anomalies a
    LEFT JOIN g_instances b ON b._anomaly_no = a.anomaly_no
), planted_redeems AS (
    SELECT 'planted', anomaly_no, which, CASE WHEN item_benefit = 'unknown' THEN unknown_benefit_id ELSE own_benefit_id END,
           CASE WHEN redemption_profile = 'other' THEN other_profile_id ELSE own_profile_id END, zone,
           created_at, 'redeem', redemption_form, false,
           usage_at IS NOT NULL, usage_at, usage_status, usage_form,
           CASE WHEN usage_profile = 'other' THEN other_profile_id ELSE own_profile_id END,
           gen_store(zone, gen_u($seed, anomaly_no * 4 + which, 'store')),
           round(15 + 250 * pow(gen_u($seed, anomaly_no * 4 + which, 'total'), 2), 2),
           CASE WHEN usage_form = 'instance_code' THEN own_code END,
           -- return_exceeds: returns a day and two days after the redemption (see generate_returns.sql).
           CASE WHEN returns > 0 THEN created_at + INTERVAL 1 DAY END, returns, false
    FROM (SELECT *, 1 AS which, r1_at AS created_at, r1_usage_at AS usage_at, return_rows AS returns
          FROM planted WHERE r1_at IS NOT NULL
          UNION ALL
          SELECT *, 2, r2_at, r2_usage_at, 0 FROM planted WHERE r2_at IS NOT NULL)
), events AS (
    SELECT * FROM background_redeems
    UNION ALL SELECT * FROM background_reversals
    UNION ALL SELECT * FROM planted_redeems
)
-- Redemption ids follow creation time, as Omneo's do.
SELECT 5000000 + row_number() OVER (ORDER BY created_at, _origin, benefit_id, _which, _anomaly_no) AS redemption_id,
       * EXCLUDE (reversed)
FROM events
