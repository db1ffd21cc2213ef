-- One row per planted invalid row: a copy of a clean row (its template) with one value
-- broken, inserted after clean row `pos` of its file. Validation must reject it with
-- `reason` naming `column` (docs/validation.md), and for nothing else: the copy gets fresh
-- keys (`fresh`), except a duplicate_key row, which keeps the key it repeats and comes after
-- the row it copies (so the original is the one accepted). A planted profile is a profile of
-- its own past the last index (generate_profiles.sql). Nothing references these rows.
-- `overrides` maps column → the text written in place of the template's value.
-- $seed, $profiles; $csv: CSV output (type errors need a text file); $per_kind: rows of
-- each kind (definitions: one each). template_id: the definition a definition fault copies.
WITH kinds (dataset, kind_no, "column", reason, value, text_only, fresh, template_id, note) AS (VALUES
    ('profiles', 1, 'id', 'missing_value', NULL, false, '', NULL, 'no id'),
    ('profiles', 2, 'id', 'invalid_value', 'guest profile 42', false, '', NULL, 'an id that is not UUID-like (spaces)'),
    ('profiles', 3, 'id', 'duplicate_key', NULL, false, '', NULL, 'the same profile exported twice'),
    ('profiles', 4, 'birth_day', 'out_of_range', '32', false, '', NULL, 'day 32'),
    ('profiles', 5, 'birth_day', 'out_of_range', '0', false, '', NULL, 'day 0'),
    ('profiles', 6, 'birth_month', 'out_of_range', '13', false, '', NULL, 'month 13'),
    ('profiles', 7, 'birth_year', 'out_of_range', '1850', false, '', NULL, 'born in 1850'),
    ('profiles', 8, 'timezone', 'invalid_timezone', 'Melbourne', false, '', NULL, 'a city, not an IANA zone'),
    ('profiles', 9, 'timezone', 'invalid_timezone', 'AEST', false, '', NULL, 'an abbreviation, not an IANA zone'),
    ('profiles', 10, 'attributes', 'invalid_type', '["not", "an", "object"]', false, '', NULL, 'attributes not a JSON object'),
    ('profiles', 11, 'birth_day', 'invalid_type', 'twelfth', true, '', NULL, 'a day in words'),
    ('profiles', 12, 'joined_at', 'invalid_type', 'last tuesday', true, '', NULL, 'not a timestamp'),
    ('profiles', 13, 'tags', 'invalid_type', '["vip", "app"', true, '', NULL, 'a JSON array cut short'),
    ('benefit_definitions', 1, 'name', 'missing_value', NULL, false, 'id,handle', 110, 'no name'),
    ('benefit_definitions', 2, 'id', 'duplicate_key', NULL, false, 'handle', 107, 'a second definition with id 107'),
    ('benefit_definitions', 3, 'handle', 'duplicate_key', NULL, false, 'id', 104, 'a second definition with handle coffee-card'),
    ('benefit_definitions', 4, 'period', 'out_of_range', '-5', false, 'id,handle', 108, 'a negative period'),
    ('benefit_definitions', 5, 'max_redemptions', 'out_of_range', '0', false, 'id,handle', 110, 'zero uses allowed'),
    ('benefit_definitions', 6, 'total_allocations_remaining', 'out_of_range', '999999999', false, 'id,handle', 102,
     'more allocations remaining than in total'),
    ('benefit_definitions', 7, 'claim_period_end_at', 'date_order',
     (SELECT gen_iso(claim_period_start_at - INTERVAL 1 DAY, 'Australia/Melbourne') FROM g_definition_catalog WHERE id = 105),
     false, 'id,handle', 105, 'a claim window that ends before it starts'),
    ('benefit_definitions', 8, 'claim_condition', 'invalid_rule', '{"between": [{"var": "age"}, 18, 30]}', false,
     'id,handle', 105, 'an operator the compiler does not support'),
    ('benefit_definitions', 9, 'claim_condition', 'invalid_rule', '{"in": [{"var": "tier_handle"}, ["gold"]', false,
     'id,handle', 109, 'JSON cut short'),
    ('benefit_definitions', 10, 'is_published', 'invalid_type', 'maybe', true, 'id,handle', 110, 'not a boolean'),
    ('benefit_definitions', 11, 'period', 'invalid_type', '7 days', true, 'id,handle', 108, 'a period in words'),
    ('benefits', 1, 'profile_id', 'missing_value', NULL, false, 'id', NULL, 'no profile'),
    ('benefits', 2, 'issued_at', 'missing_value', NULL, false, 'id', NULL, 'no issue time'),
    ('benefits', 3, 'benefit_definition_id', 'unknown_definition', '999', false, 'id', NULL, 'a definition that does not exist'),
    ('benefits', 4, 'redemptions_remaining', 'out_of_range', '-1', false, 'id', NULL, 'negative uses left'),
    ('benefits', 5, 'timezone', 'invalid_timezone', 'AEDT', false, 'id', NULL, 'an abbreviation, not an IANA zone'),
    ('benefits', 6, 'id', 'duplicate_key', NULL, false, '', NULL, 'the same benefit exported twice'),
    ('benefits', 7, 'issued_at', 'invalid_type', '31/12/2026', true, 'id', NULL, 'a day-first date'),
    ('benefits', 8, 'id', 'invalid_type', '1000012.5', true, 'id', NULL, 'a fractional id'),
    ('redemptions', 1, 'profile_id', 'missing_value', NULL, false, 'id', NULL, 'no profile'),
    ('redemptions', 2, 'created_at', 'missing_value', NULL, false, 'id', NULL, 'no time'),
    ('redemptions', 3, 'count', 'out_of_range', '-1', false, 'id', NULL, 'a negative count'),
    ('redemptions', 4, 'id', 'duplicate_key', NULL, false, '', NULL, 'the same redemption exported twice'),
    ('redemptions', 5, 'created_at', 'invalid_type', 'yesterday', true, 'id', NULL, 'not a timestamp'),
    ('redemptions', 6, 'total', 'invalid_type', 'ten dollars', true, 'id', NULL, 'not a number'),
    ('redemption_items', 1, 'redemption_id', 'unknown_redemption', '999999999', false, 'id', NULL, 'a redemption that does not exist'),
    ('redemption_items', 2, 'type', 'invalid_value', 'voucher', false, 'id', NULL, 'not benefit, reward or point'),
    ('redemption_items', 3, 'item_id', 'missing_value', NULL, false, 'id', NULL, 'no item'),
    ('redemption_items', 4, 'count', 'out_of_range', '-1', false, 'id', NULL, 'a negative count'),
    ('redemption_items', 5, 'id', 'duplicate_key', NULL, false, '', NULL, 'the same item exported twice'),
    ('redemption_items', 6, 'count', 'invalid_type', 'one', true, 'id', NULL, 'a count in words'),
    ('returns', 1, 'redemption_id', 'unknown_redemption', '999999998', false, '', NULL, 'a redemption that does not exist'),
    ('returns', 2, 'count', 'out_of_range', '0', false, '', NULL, 'a return of nothing'),
    ('returns', 3, 'count', 'missing_value', NULL, false, '', NULL, 'no count'),
    ('returns', 4, 'returned_at', 'invalid_type', 'tomorrow', true, '', NULL, 'not a timestamp'),
    ('returns', 5, 'count', 'invalid_type', '1.5', true, '', NULL, 'half a use'),
    ('transactions', 1, 'external_id', 'missing_value', NULL, false, 'external_id', NULL, 'no external id'),
    ('transactions', 2, 'transacted_at', 'missing_value', NULL, false, 'external_id', NULL, 'no time'),
    ('transactions', 3, 'status', 'invalid_value', 'pending', false, 'external_id', NULL, 'not completed, voided or refunded'),
    ('transactions', 4, 'total', 'invalid_type', 'free', true, 'external_id', NULL, 'not a number'),
    ('transactions', 5, 'benefit_id', 'invalid_type', 'abc', true, 'external_id', NULL, 'not a whole number'),
    ('transactions', 6, 'transacted_at', 'invalid_type', '2026-13-01 10:00:00', true, 'external_id', NULL, 'month 13')
), sizes (dataset, clean_rows) AS (
    SELECT 'profiles', $profiles
    UNION ALL SELECT 'benefit_definitions', (SELECT count(*) FROM g_benefit_definitions)
    UNION ALL SELECT 'benefits', (SELECT count(*) FROM g_benefits)
    UNION ALL SELECT 'redemptions', (SELECT count(*) FROM g_redemptions)
    UNION ALL SELECT 'redemption_items', (SELECT count(*) FROM g_redemption_items)
    UNION ALL SELECT 'returns', (SELECT count(*) FROM g_returns)
    UNION ALL SELECT 'transactions', (SELECT count(*) FROM g_transactions)
), rows AS (
    SELECT k.*, t.n, s.clean_rows,
           (hash($seed, k.dataset, k.kind_no, t.n) % s.clean_rows)::BIGINT AS drawn_pos,
           (SELECT _seq FROM g_benefit_definitions d WHERE d.id = k.template_id) AS template_seq
    FROM kinds k
    JOIN sizes s USING (dataset)
    CROSS JOIN LATERAL range(CASE WHEN k.dataset = 'benefit_definitions' THEN 1 ELSE $per_kind END) t(n)
    WHERE s.clean_rows > 0 AND ($csv OR NOT k.text_only)
), placed AS (
    SELECT *,
           coalesce(template_seq, drawn_pos)                                        AS template,
           -- After its template, so a duplicate never precedes the row it repeats.
           greatest(drawn_pos, coalesce(template_seq, drawn_pos))                   AS pos,
           row_number() OVER (PARTITION BY dataset ORDER BY kind_no, n)             AS sub
    FROM rows
), keyed AS (
    SELECT *,
           -- Fresh keys, far from any generated id, so the copy is no duplicate.
           map_from_entries(list_transform(list_filter(string_split(fresh, ','), lambda c: c <> ''),
               lambda c: {'key': c, 'value': CASE dataset || '.' || c
                   WHEN 'benefit_definitions.id' THEN (900 + sub)::VARCHAR
                   WHEN 'benefit_definitions.handle' THEN 'draft-offer-' || sub
                   WHEN 'benefits.id' THEN (700000000 + sub)::VARCHAR
                   WHEN 'redemptions.id' THEN (800000000 + sub)::VARCHAR
                   WHEN 'redemption_items.id' THEN (850000000 + sub)::VARCHAR
                   WHEN 'transactions.external_id' THEN 'POS-BAD-' || lpad(sub::VARCHAR, 6, '0') END}))
               AS fresh_values
    FROM placed
)
SELECT dataset, kind_no, n, "column", reason, value, text_only, note, template, pos, sub,
       -- Overrides of the template's values (text); the broken value wins over a fresh key.
       map_concat(fresh_values,
                  CASE WHEN reason <> 'duplicate_key' THEN map_from_entries([{'key': "column", 'value': value}])
                       -- A profile copy is a profile of its own (generate_profiles.sql): give it the id it repeats.
                       WHEN dataset = 'profiles' THEN MAP {'id': gen_profile_id($seed, template)}
                       ELSE MAP {}::MAP(VARCHAR, VARCHAR) END)                  AS overrides,
       -- 1-based data row: the clean rows up to pos, the faults before it, itself.
       pos + row_number() OVER (PARTITION BY dataset ORDER BY pos, sub) + 1       AS source_row
FROM keyed
ORDER BY dataset, source_row
