-- company_objective_health_daily: objective health per company per snapshot_date,
-- for trends. One row per (snapshot_date, company_id).
--
-- Source: stg_objectives. Objectives without a company_id cannot be attributed
-- to a company and are left out (they are flagged 'companyId missing' in
-- raw.planhat_objectives.load_issues).
--   objective_count         all objectives of the company in that snapshot.
--   objectives_with_health  those with a numeric health.
--   avg_health, min_health, max_health
--                           over objectives WITH a health only: a missing health
--                           is unknown, not zero. NULL when no objective has one.
--   at_risk_objectives      objectives with health <= the at_risk_threshold
--                           variable (run parameter, default 2.0).
--   at_risk_share           at_risk_objectives / objectives_with_health; NULL when
--                           no objective has a health.
SELECT
    snapshot_date,
    company_id,
    max(company_name) AS company_name,
    count(*) AS objective_count,
    count(health) AS objectives_with_health,
    avg(health) AS avg_health,
    min(health) AS min_health,
    max(health) AS max_health,
    count(*) FILTER (WHERE health <= getvariable('at_risk_threshold')) AS at_risk_objectives,
    count(*) FILTER (WHERE health <= getvariable('at_risk_threshold'))
        / nullif(count(health), 0) AS at_risk_share
FROM stg_objectives
WHERE company_id IS NOT NULL
GROUP BY snapshot_date, company_id
ORDER BY snapshot_date, company_id
