-- company_objective_health: objective health per company at the latest snapshot.
-- One row per company_id. The number Planhat suggests feeding into the customer
-- Health Score is avg_health.
--
-- Source: company_objective_health_daily, restricted to the latest snapshot_date
-- loaded for ANY company (the latest date in stg_objectives). A company with no
-- objectives in that snapshot does not appear, even if it had some earlier: it
-- has no objectives now. Use company_objective_health_daily for history.
-- Columns and the NULL-health rule are those of company_objective_health_daily:
-- avg/min/max_health ignore objectives without a health; at_risk_share is
-- at_risk_objectives / objectives_with_health.
SELECT
    company_id,
    company_name,
    objective_count,
    objectives_with_health,
    avg_health,
    min_health,
    max_health,
    at_risk_objectives,
    at_risk_share,
    snapshot_date
FROM company_objective_health_daily
WHERE snapshot_date = (SELECT max(snapshot_date) FROM stg_objectives)
ORDER BY company_id
