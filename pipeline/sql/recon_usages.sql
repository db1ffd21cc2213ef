-- One row per POS benefit usage (a transaction row naming a redemption, a benefit or a
-- code), resolved to a benefit instance by the first rule that applies (contract §5):
-- its redemption's benefit item, its benefit_id, an instance's code, or a definition's
-- code → the profile's instance of that definition valid at the time, earliest-expiring.
WITH usage AS (
    SELECT source_file AS usage_source_file, source_row AS usage_source_row,
           external_id AS transaction_external_id, transacted_at, profile_id AS usage_profile_id,
           coalesce(status, 'completed') AS pos_status, location_external_id, total,
           redemption_id AS named_redemption_id, benefit_id AS named_benefit_id, redeem_code
    FROM transactions
    WHERE redemption_id IS NOT NULL OR benefit_id IS NOT NULL OR redeem_code IS NOT NULL
), by_redemption AS (
    SELECT u.usage_source_file, u.usage_source_row, i.benefit_id, i.redemption_id, i.item_position
    FROM usage u
    JOIN recon_items i ON i.redemption_id = u.named_redemption_id AND i.kind = 'redeem'
    WHERE i.benefit_id IN (SELECT benefit_id FROM recon_ledger)
    QUALIFY row_number() OVER (
        PARTITION BY u.usage_source_file, u.usage_source_row
        ORDER BY (i.benefit_id = u.named_benefit_id) DESC NULLS LAST, i.item_position) = 1
), used_codes AS (
    SELECT DISTINCT redeem_code AS code FROM usage WHERE redeem_code IS NOT NULL
), instance_codes AS (
    -- Only codes some sale used: there are millions of instances, and far fewer codes rung up.
    SELECT code, min(id) AS benefit_id
    FROM (SELECT id, redeem_code_pos AS code FROM benefits
          UNION ALL SELECT id, redeem_code_online FROM benefits)
    WHERE code IN (SELECT code FROM used_codes)
    GROUP BY code
), definition_codes AS (
    SELECT code, min(id) AS definition_id
    FROM (SELECT id, redeem_code_pos AS code FROM benefit_definitions
          UNION ALL SELECT id, redeem_code_online FROM benefit_definitions)
    WHERE code IS NOT NULL
    GROUP BY code
), coded AS MATERIALIZED (
    -- The few sales whose code is a definition's, first: left to itself the optimizer
    -- joins every sale to every benefit of its profile (9x the rows), then filters.
    SELECT u.usage_source_file, u.usage_source_row, u.usage_profile_id, u.transacted_at, d.definition_id
    FROM usage u
    JOIN definition_codes d ON d.code = u.redeem_code
), by_definition_code AS (
    SELECT u.usage_source_file, u.usage_source_row, b.benefit_id
    FROM coded u
    JOIN recon_ledger b ON b.definition_id = u.definition_id AND b.profile_id = u.usage_profile_id
                       AND b.issued_at <= u.transacted_at
                       AND (b.expires_at IS NULL OR u.transacted_at <= b.expires_at)
    QUALIFY row_number() OVER (PARTITION BY u.usage_source_file, u.usage_source_row
                               ORDER BY b.expires_at NULLS LAST, b.benefit_id) = 1
)
SELECT u.*,
       coalesce(r.benefit_id, nb.benefit_id, ic.benefit_id, dc.benefit_id)        AS benefit_id,
       CASE WHEN r.benefit_id IS NOT NULL THEN 'redemption_id'
            WHEN nb.benefit_id IS NOT NULL THEN 'benefit_id'
            WHEN ic.benefit_id IS NOT NULL THEN 'instance_code'
            WHEN dc.benefit_id IS NOT NULL THEN 'definition_code' END      AS resolved_by,
       r.redemption_id                                                   AS direct_redemption_id,
       r.item_position                                                   AS direct_item_position,
       dcode.definition_id                                               AS code_definition_id
FROM usage u
LEFT JOIN by_redemption r USING (usage_source_file, usage_source_row)
LEFT JOIN recon_ledger nb ON nb.benefit_id = u.named_benefit_id
LEFT JOIN instance_codes ic ON ic.code = u.redeem_code
LEFT JOIN by_definition_code dc USING (usage_source_file, usage_source_row)
LEFT JOIN definition_codes dcode ON dcode.code = u.redeem_code
