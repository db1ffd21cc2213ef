-- One row per benefit instance a profile holds, or is known to be about to hold:
-- every exported benefit, plus every instance this project issued (recorded in --state)
-- that Omneo's export does not show yet. An instance the export shows counts once, with
-- the export's figures.
SELECT b.profile_id,
       b.benefit_definition_id                           AS definition_id,
       b.external_id,
       b.issued_at,
       b.expires_at,
       -- null remaining means unlimited: still has uses left
       coalesce(b.redemptions_remaining, 1) > 0          AS has_remaining,
       false                                             AS pending
FROM benefits b
UNION ALL
SELECT s.profile_id,
       s.definition_id,
       s.external_id,
       s.issued_at_utc,
       s.expires_at_utc,
       coalesce(s.max_redemptions, 1) > 0,
       true                                              AS pending
FROM issuance_state s
WHERE s.external_id NOT IN (SELECT external_id FROM benefits WHERE external_id IS NOT NULL)
