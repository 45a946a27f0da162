-- stg_objectives: typed, cleaned objectives, one row per objective per snapshot.
--
-- Source: raw.planhat_objectives (the planhat_objectives extract-load asset).
-- Rows:   every loaded objective; records that were not JSON objects at all are
--         left out here (they stay in raw.planhat_objectives with their load_issues).
-- Cleaning:
--   name            trimmed; an empty name becomes NULL.
--   health          DOUBLE. NULL when Planhat sent no health or a value that is not
--                   a number; the load already turned such values into NULL and
--                   recorded why in load_issues. A numeric string ("4.5") was read
--                   as its number and is flagged in health_issue.
--   has_health      health is not NULL.
--   health_issue    the load found something wrong with the health value.
--   company_name    trimmed; when missing, the name another objective of the same
--                   company carries in the same snapshot; else the company_id.
--   has_load_issues the load flagged the record (see load_issues, raw_record).
SELECT
    snapshot_date,
    objective_id,
    nullif(trim(name), '') AS name,
    health,
    health IS NOT NULL AS has_health,
    list_has_any(load_issues, ['health is not a number', 'health is a numeric string'])
        AS health_issue,
    company_id,
    coalesce(
        nullif(trim(company_name), ''),
        max(nullif(trim(company_name), '')) OVER (PARTITION BY snapshot_date, company_id),
        company_id
    ) AS company_name,
    nullif(trim(external_id), '') AS external_id,
    nullif(trim(source_id), '') AS source_id,
    custom,
    usage,
    extra,
    captured_at,
    len(load_issues) > 0 AS has_load_issues,
    load_issues
FROM raw.planhat_objectives
WHERE NOT list_contains(load_issues, 'record is not an object')
