-- One row per corrective API call (contract §6), from the findings whose action is a call:
-- `kind` is the payload folder, `path` the endpoint, `body` the JSON body. Times in bodies
-- are local wall times in the benefit's zone, else the profile's, else $default_timezone.
-- recon_profiles holds the profiles of every completed, unpaired usage (all a call can name).
WITH usage_zone AS (
    -- Only the sales a call names (a few out of millions of usages).
    SELECT u.usage_source_file, u.usage_source_row, u.transacted_at, u.transaction_external_id,
           u.location_external_id, u.total,
           coalesce(b.timezone, p.timezone, $default_timezone) AS tz
    FROM recon_usages u
    LEFT JOIN recon_ledger b ON b.benefit_id = u.benefit_id
    LEFT JOIN recon_profiles p ON p.id = u.usage_profile_id
    WHERE (u.usage_source_file, u.usage_source_row) IN (
        SELECT _usage_source_file, _usage_source_row FROM recon_exceptions WHERE action IN ('redemption', 'claim_redeem'))
)
SELECT 'redemptions' AS kind, e.exception_id,
       '/api/v3/profiles/' || e.profile_id || '/benefits/' || e.benefit_id || '/redemptions' AS path,
       to_json(struct_pack(
           issued_at := strftime(timezone(z.tz, z.transacted_at), '%Y-%m-%d %H:%M:%S'),
           timezone := z.tz,
           external_id := z.transaction_external_id))::VARCHAR AS body
FROM recon_exceptions e
JOIN usage_zone z ON z.usage_source_file = e._usage_source_file AND z.usage_source_row = e._usage_source_row
WHERE e.action = 'redemption'

UNION ALL
SELECT 'claim_redeem', e.exception_id,
       '/api/v3/profiles/' || e.profile_id || '/benefits/claim-redeem',
       to_json(struct_pack(
           definition := d.handle,
           timezone := z.tz,
           external_id := z.transaction_external_id,
           meta := struct_pack(
               transacted_at := strftime(timezone(z.tz, z.transacted_at), '%Y-%m-%d %H:%M:%S'),
               location_external_id := z.location_external_id,
               total := z.total)))::VARCHAR
FROM recon_exceptions e
JOIN usage_zone z ON z.usage_source_file = e._usage_source_file AND z.usage_source_row = e._usage_source_row
JOIN benefit_definitions d ON d.id = e.definition_id
WHERE e.action = 'claim_redeem'

UNION ALL
SELECT 'returns', e.exception_id,
       '/api/v3/redemptions/' || e.redemption_id || '/benefit/return',
       to_json(struct_pack(count := e._return_count))::VARCHAR
FROM recon_exceptions e
WHERE e.action = 'return'
