"""Company-health alerts: the SQL model over real snapshots, the check, and the webhook."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from objectives_pipeline.alert_webhook import alert_text, post_webhook
from objectives_pipeline.definitions import build_defs
from objectives_pipeline.defs.extract_assets import planhat_objectives
from objectives_pipeline.defs.health_alerts import no_health_alerts
from objectives_pipeline.defs.reverse_etl import crm_objectives
from objectives_pipeline.defs.sql_assets import build_sql_model_assets
from objectives_pipeline.planhat import PlanhatClient
from objectives_pipeline.resources import (
    AlertWebhookResource,
    SqlModelsResource,
    WarehouseResource,
)
from objectives_pipeline.warehouse import (
    SnapshotStager,
    Warehouse,
    build_model,
    discover_models,
    load_snapshot,
    read_health_alerts,
)

from .dagster_helpers import planhat_for, run_elt

LATEST = date(2026, 11, 28)


def day(days_before: int) -> date:
    return LATEST - timedelta(days=days_before)


# company -> {days before LATEST: objective healths}; None is an objective without a health.
HISTORY: dict[str, dict[int, list[float | None]]] = {
    "drop": {7: [4.0, 4.0], 0: [3.0, 2.8]},  # fell 1.1, stays above 2
    "exact": {7: [3.1], 0: [2.1]},  # fell exactly 1.0 (in floating point 0.9999...)
    "cross": {7: [2.5], 0: [2.0]},  # fell 0.5, from above 2 to exactly 2
    "both": {7: [3.5], 0: [1.0]},  # fell 2.5 and crossed
    "at_risk_before": {7: [2.0], 0: [1.5]},  # already at 2: no crossing; fell only 0.5
    "small": {7: [3.0], 0: [2.1]},  # fell 0.9
    "rose": {7: [2.0], 0: [4.0]},
    "gap": {9: [4.5], 3: [3.0], 0: [3.0]},  # no snapshot 7 days before: the one at 9 counts
    "recent_only": {3: [5.0], 0: [1.0]},  # nothing 7 or more days before: cannot alert
    "null_baseline": {9: [4.0], 7: [None], 0: [2.5]},  # day 7 has no health: day 9 counts
    "now_null": {7: [4.0], 0: [None]},
}
EXPECTED = {  # company: (baseline days before, before, now, dropped, crossed)
    "both": (7, 3.5, 1.0, True, True),
    "gap": (9, 4.5, 3.0, True, False),
    "null_baseline": (9, 4.0, 2.5, True, False),
    "drop": (7, 4.0, 2.9, True, False),
    "exact": (7, 3.1, 2.1, True, False),
    "cross": (7, 2.5, 2.0, False, True),
}
HEALTH_MODELS = [
    "stg_objectives",
    "company_objective_health_daily",
    "company_objective_health",
    "company_health_alerts",
]


def load_history(path: Path) -> Warehouse:
    warehouse = Warehouse(path)
    days = sorted({d for history in HISTORY.values() for d in history}, reverse=True)
    for days_before in days:
        records = [
            {
                "_id": f"{company}-{i}",
                "name": f"Objective {i}",
                "health": health,
                "companyId": company,
                "companyName": company.replace("_", " ").title(),
            }
            for company, history in HISTORY.items()
            for i, health in enumerate(history.get(days_before, []))
        ]
        with SnapshotStager() as stager:
            stager.add_page(json.dumps(records).encode())
            load_snapshot(warehouse, stager, day(days_before), datetime.now(UTC))
    return warehouse


def build_alerts(warehouse: Warehouse, **variables: object) -> dict[str, Any]:
    models = {m.name: m for m in discover_models()}
    for name in HEALTH_MODELS:
        build_model(warehouse, models[name], variables)
    return {a.company_id: a for a in read_health_alerts(warehouse)}


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    return load_history(tmp_path / "objectives.duckdb")


def test_alerts_for_drops_and_crossings_and_none_for_the_rest(warehouse: Warehouse) -> None:
    alerts = build_alerts(warehouse)

    assert list(alerts) == list(EXPECTED), "biggest drop first"
    for company, (days_before, before, now, dropped, crossed) in EXPECTED.items():
        alert = alerts[company]
        assert alert.snapshot_date == LATEST
        assert alert.baseline_date == day(days_before)
        assert alert.health_before == pytest.approx(before)
        assert alert.health_now == pytest.approx(now)
        assert alert.health_drop == pytest.approx(before - now)
        assert (alert.dropped, alert.crossed_at_risk) == (dropped, crossed)
        assert ("fell" in alert.reason) == dropped
        assert ("crossed to at-risk (<= 2)" in alert.reason) == crossed
    assert alerts["gap"].reason == "fell 1.50 since 2026-11-19"
    assert alerts["exact"].health_drop == 1.0


def test_window_and_drop_are_run_parameters(warehouse: Warehouse) -> None:
    three_days = build_alerts(warehouse, alert_window_days=3)
    assert three_days["recent_only"].baseline_date == day(3)
    assert three_days["recent_only"].health_drop == pytest.approx(4.0)
    assert "gap" not in three_days, "3.0 three days ago, 3.0 now"

    big_drops = build_alerts(warehouse, alert_drop=2.0)
    assert {c for c, a in big_drops.items() if a.dropped} == {"both"}
    assert set(big_drops) == {"both", "cross"}


class Receiver:
    """A webhook receiver on 127.0.0.1 answering the scripted statuses, then 200."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.requests: list[tuple[str, dict[str, Any]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.path, json.loads(body)))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def url(self, path: str = "/services/T000/B000/s3cr3t-hook-key") -> str:
        return f"http://{self.host}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def materialize_alerts(
    warehouse: Warehouse, webhook: AlertWebhookResource, instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*build_sql_model_assets([planhat_objectives, crm_objectives]), no_health_alerts],
        selection=HEALTH_MODELS,
        resources={
            "warehouse": WarehouseResource(path=warehouse.database, lock_timeout_seconds=10),
            "sql_models": SqlModelsResource(),
            "alert_webhook": webhook,
        },
        instance=instance,
        raise_on_error=False,
    )


def check_result(result: dg.ExecuteInProcessResult) -> tuple[bool, Any, dict[str, Any]]:
    (evaluation,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "no_health_alerts"
    ]
    metadata = {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()}
    return evaluation.passed, evaluation.severity, metadata


def all_text(result: dg.ExecuteInProcessResult, instance: dg.DagsterInstance) -> str:
    return "\n".join(str(e) for e in instance.all_logs(result.run_id))


def test_a_dagster_run_warns_and_posts_the_alert_list_to_the_webhook(
    warehouse: Warehouse, receiver: Receiver
) -> None:
    with dg.instance_for_test() as instance:
        result = materialize_alerts(warehouse, AlertWebhookResource(url=receiver.url()), instance)
        text = all_text(result, instance)

    assert result.success
    passed, severity, metadata = check_result(result)
    assert not passed and severity == dg.AssetCheckSeverity.WARN
    assert metadata["alerts"] == len(EXPECTED)
    table = metadata["alert_list"]
    assert table.startswith("| company | company_id | before | now | drop | reason |")
    assert (
        "| Both | both | 3.5 | 1.0 | 2.5 | fell 2.50 since 2026-11-21; crossed to at-risk" in table
    )
    assert metadata["webhook"] == "delivered" and metadata["webhook_host"] == receiver.host

    ((path, payload),) = receiver.requests
    assert path == "/services/T000/B000/s3cr3t-hook-key"
    assert list(payload) == ["text"]
    lines = payload["text"].splitlines()
    assert lines[0] == "*6 companies' average objective health dropped* (snapshot 2026-11-28)"
    assert (
        lines[1]
        == "• Both (both): 3.50 → 1.00 (fell 2.50 since 2026-11-21; crossed to at-risk (<= 2))"
    )
    assert {line.split(" (")[1].split(")")[0] for line in lines[1:]} == set(EXPECTED)
    assert "s3cr3t" not in text and "s3cr3t" not in json.dumps(metadata, default=str)


def test_a_failing_webhook_is_retried_recorded_and_never_fails_the_run(
    warehouse: Warehouse,
) -> None:
    failing = Receiver(statuses=[503] * 10)
    try:
        webhook = AlertWebhookResource(url=failing.url(), max_attempts=3, backoff_seconds=0.01)
        with dg.instance_for_test() as instance:
            result = materialize_alerts(warehouse, webhook, instance)
            text = all_text(result, instance)
    finally:
        failing.close()

    assert result.success
    _, _, metadata = check_result(result)
    assert len(failing.requests) == 3
    assert metadata["webhook"] == "failed" and metadata["webhook_attempts"] == 3
    assert metadata["webhook_status"] == 503
    assert metadata["webhook_error"] == f"{failing.host} answered HTTP 503"
    assert "were not delivered to the webhook" in text and "s3cr3t" not in text


def test_no_alerts_passes_and_sends_nothing(tmp_path: Path, receiver: Receiver) -> None:
    warehouse = Warehouse(tmp_path / "steady.duckdb")
    for days_before in (7, 0):
        records = [{"_id": "o1", "name": "Steady", "health": 3.0, "companyId": "s"}]
        with SnapshotStager() as stager:
            stager.add_page(json.dumps(records).encode())
            load_snapshot(warehouse, stager, day(days_before), datetime.now(UTC))
    with dg.instance_for_test() as instance:
        result = materialize_alerts(warehouse, AlertWebhookResource(url=receiver.url()), instance)

    assert result.success
    passed, _, metadata = check_result(result)
    assert passed and metadata["alerts"] == 0 and "webhook" not in metadata
    assert receiver.requests == []


def test_post_webhook_retries_server_errors_but_not_a_wrong_url(warehouse: Warehouse) -> None:
    alerts = list(build_alerts(warehouse).values())
    flaky = Receiver(statuses=[500, 429])
    try:
        outcome = post_webhook(flaky.url(), {"text": alert_text(alerts)}, backoff=0.01)
    finally:
        flaky.close()
    assert outcome.delivered and outcome.attempts == 3 and outcome.status_code == 200
    assert len(flaky.requests) == 3

    missing = Receiver(statuses=[404])
    try:
        outcome = post_webhook(missing.url(), {"text": "x"}, backoff=0.01)
    finally:
        missing.close()
    assert not outcome.delivered and outcome.attempts == 1 and outcome.status_code == 404

    closed = Receiver()
    url = closed.url()
    closed.close()  # nothing listens there any more
    outcome = post_webhook(url, {"text": "x"}, max_attempts=2, backoff=0.01, timeout=2)
    assert not outcome.delivered and outcome.attempts == 2 and outcome.status_code is None
    assert outcome.error is not None and outcome.error.startswith(f"could not reach {closed.host}")
    assert "s3cr3t" not in outcome.error


def test_alert_text_lists_at_most_max_lines(warehouse: Warehouse) -> None:
    alerts = list(build_alerts(warehouse).values())
    text = alert_text(alerts, max_lines=2)
    assert len(text.splitlines()) == 4
    assert text.endswith("… and 4 more: SELECT * FROM company_health_alerts")


def test_company_objective_health_metadata_is_numeric_for_the_ui_plots(
    warehouse: Warehouse,
) -> None:
    with dg.instance_for_test() as instance:
        result = materialize_alerts(warehouse, AlertWebhookResource(), instance)
    assert result.success
    (event,) = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key == dg.AssetKey("company_objective_health")
    ]
    metadata = event.metadata
    now = {c: h[0] for c, h in HISTORY.items() if 0 in h}
    averages = {
        c: sum(v for v in hs if v is not None) / len([v for v in hs if v is not None])
        for c, hs in now.items()
        if any(v is not None for v in hs)
    }
    assert metadata["companies"] == dg.MetadataValue.int(len(now))
    assert metadata["companies_at_risk"] == dg.MetadataValue.int(
        sum(1 for a in averages.values() if a <= 2.0)
    )
    assert metadata["objectives_without_health"] == dg.MetadataValue.int(1)
    mean = metadata["mean_avg_health"]
    assert isinstance(mean, dg.FloatMetadataValue)
    assert mean.value == pytest.approx(sum(averages.values()) / len(averages), abs=1e-4)
    worst = metadata["worst_companies"]
    assert isinstance(worst, dg.MarkdownMetadataValue) and worst.value is not None
    rows = worst.value.splitlines()[2:]
    ten_worst = sorted(averages, key=lambda c: (averages[c], c))[:10]
    assert len(rows) == 10
    assert [r.split(" | ")[0].removeprefix("| ") for r in rows] == ten_worst
    (alerts_event,) = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key == dg.AssetKey("company_health_alerts")
    ]
    assert alerts_event.metadata["alerts"] == dg.MetadataValue.int(len(EXPECTED))


def test_the_elt_job_alerts_on_a_drop_in_planhat_and_posts_it(
    sandbox: Any, tmp_path: Path, receiver: Receiver
) -> None:
    server = sandbox(objectives=120, companies=6, seed=5)
    db = tmp_path / "objectives.duckdb"
    with PlanhatClient(server.base_url, server.token, rate_limit_per_minute=None) as client:
        objectives = list(client.iter_objectives())
        target = objectives[0].company_id
        for objective in objectives:  # a known starting point: every objective healthy
            client.update_objective(objective.id, {"health": 4})
        defs = build_defs(
            {
                "planhat": planhat_for(server),
                "warehouse": WarehouseResource(path=str(db), lock_timeout_seconds=10),
                "sql_models": SqlModelsResource(),
                "alert_webhook": AlertWebhookResource(url=receiver.url()),
            }
        )
        with dg.instance_for_test() as instance:
            first = run_elt(defs, "2026-11-20", instance=instance)
            assert first.success and check_result(first)[0], "nothing to compare with yet"
            assert receiver.requests == []
            for objective in objectives:  # one company's objectives fall from 4 to 1.5
                if objective.company_id == target:
                    client.update_objective(objective.id, {"health": 1.5})
            second = run_elt(defs, "2026-11-27", instance=instance)

    assert second.success
    passed, severity, metadata = check_result(second)
    assert (passed, severity, metadata["alerts"]) == (False, dg.AssetCheckSeverity.WARN, 1)
    assert metadata["webhook"] == "delivered"
    ((_, payload),) = receiver.requests
    assert (
        f"({target}): 4.00 → 1.50 (fell 2.50 since 2026-11-20; crossed to at-risk"
        in (payload["text"])
    )
