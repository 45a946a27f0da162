-- objectives_to_push: the objectives the push op upserts into Planhat
-- (PUT /objectives, bulk), in Planhat's shape: one row per CRM objective.
--
-- Source: crm.objectives, the CRM export (data/crm/crm_objectives.csv) loaded as
-- text by the crm_objectives asset, with columns crm_objective_id, objective_name,
-- company_external_id, health_score, owner_email, renewal_date, notes.
-- Mapping:
--   name        objective_name, trimmed; NULL when blank.
--   company_id  'extid-' || company_external_id: Planhat resolves the company by
--               its externalId; NULL when the export names no company.
--   health      health_score as exported (text): the push validates it, so a value
--               that is not a number is rejected with a reason, never sent as null.
--   external_id NULL: externalId belongs to the customer's own system.
--   source_id   'crm-' || crm_objective_id: the upsert key, so pushing the same
--               row twice updates one objective instead of creating two.
--   custom      {"Owner", "Renewal date", "Notes"} as a JSON object.
-- Rows are not filtered here: the push op validates each row and records why a
-- row was not sent (reverse_etl.rejected_rows).
SELECT
    nullif(trim(objective_name), '') AS name,
    'extid-' || nullif(trim(CAST(company_external_id AS VARCHAR)), '') AS company_id,
    nullif(trim(CAST(health_score AS VARCHAR)), '') AS health,
    CAST(NULL AS VARCHAR) AS external_id,
    'crm-' || nullif(trim(CAST(crm_objective_id AS VARCHAR)), '') AS source_id,
    json_object('Owner', owner_email, 'Renewal date', renewal_date, 'Notes', notes) AS custom
FROM crm.objectives
ORDER BY source_id
