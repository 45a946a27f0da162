-- company_health_alerts: companies whose average objective health dropped, one
-- row per alerting company, biggest drop first.
--
-- Compares each company's avg_health in company_objective_health (the latest
-- snapshot) with its baseline: the company's latest snapshot in
-- company_objective_health_daily on or before (latest snapshot_date -
-- alert_window_days) that has an avg_health. The exact earlier date may be
-- missing (no run that day, or no objectives with a health): the snapshot
-- before it is used, however old, and baseline_date says which one. A company
-- without such a snapshot, or without an avg_health now, cannot alert.
-- A company alerts when either holds:
--   dropped          health_before - health_now >= alert_drop (variable,
--                    default 1.0); the drop is rounded to 9 decimals first so
--                    that 3.1 -> 2.1 counts as a drop of exactly 1.0.
--   crossed_at_risk  health_before > at_risk_threshold (default 2.0) and
--                    health_now <= at_risk_threshold: it was above the threshold
--                    and is now at or below it. Already at risk before: no
--                    crossing.
-- Columns: company_id, company_name, snapshot_date (latest), baseline_date,
-- health_before, health_now, health_drop (before - now; negative = rose),
-- dropped, crossed_at_risk, reason (one readable line).
WITH params AS (
    SELECT
        CAST(getvariable('alert_drop') AS DOUBLE) AS alert_drop,
        CAST(getvariable('alert_window_days') AS INTEGER) AS window_days,
        CAST(getvariable('at_risk_threshold') AS DOUBLE) AS threshold
),
latest AS (
    SELECT company_id, company_name, snapshot_date, avg_health
    FROM company_objective_health
    WHERE avg_health IS NOT NULL
),
baseline AS (
    SELECT
        d.company_id,
        max(d.snapshot_date) AS baseline_date,
        arg_max(d.avg_health, d.snapshot_date) AS health_before
    FROM company_objective_health_daily AS d
    JOIN latest AS l ON l.company_id = d.company_id
    CROSS JOIN params AS p
    WHERE d.avg_health IS NOT NULL
      AND d.snapshot_date <= l.snapshot_date - p.window_days
    GROUP BY d.company_id
),
compared AS (
    SELECT
        l.company_id,
        l.company_name,
        l.snapshot_date,
        b.baseline_date,
        b.health_before,
        l.avg_health AS health_now,
        round(b.health_before - l.avg_health, 9) AS health_drop,
        round(b.health_before - l.avg_health, 9) >= p.alert_drop AS dropped,
        b.health_before > p.threshold AND l.avg_health <= p.threshold AS crossed_at_risk,
        p.threshold
    FROM latest AS l
    JOIN baseline AS b ON b.company_id = l.company_id
    CROSS JOIN params AS p
)
SELECT
    company_id,
    company_name,
    snapshot_date,
    baseline_date,
    health_before,
    health_now,
    health_drop,
    dropped,
    crossed_at_risk,
    concat_ws(
        '; ',
        CASE WHEN dropped THEN printf('fell %.2f since %s', health_drop, baseline_date) END,
        CASE WHEN crossed_at_risk THEN printf('crossed to at-risk (<= %g)', threshold) END
    ) AS reason
FROM compared
WHERE dropped OR crossed_at_risk
ORDER BY health_drop DESC, company_id
