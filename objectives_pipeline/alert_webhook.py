"""Health alerts to a Slack-compatible incoming webhook: ``POST {"text": ...}`` as JSON.

:func:`post_webhook` never raises for a delivery problem: it retries connection
errors, timeouts, 429 and 5xx answers a few times with exponential backoff inside
a total time budget, then reports what happened in a :class:`WebhookOutcome`.
The URL usually embeds a secret, so outcomes and messages name its host only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
)

from objectives_pipeline.settings import ALERT_WEBHOOK_ENV_VAR
from objectives_pipeline.warehouse import HealthAlert

__all__ = ["ALERT_WEBHOOK_ENV_VAR", "WebhookOutcome", "alert_text", "post_webhook", "webhook_host"]


@dataclass(frozen=True)
class WebhookOutcome:
    """What one :func:`post_webhook` call did.

    Attributes:
        delivered: the receiver answered 2xx.
        attempts: requests sent.
        host: the webhook's host (the rest of the URL is not shown anywhere).
        status_code: the last HTTP status, None when no answer came.
        error: why it was not delivered, None when it was.
        seconds: time spent, waits included.
    """

    delivered: bool
    attempts: int
    host: str
    status_code: int | None
    error: str | None
    seconds: float


def webhook_host(url: str) -> str:
    """The host (and port, if given) of ``url``: safe to log."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def alert_text(alerts: Sequence[HealthAlert], *, max_lines: int = 20) -> str:
    """A Slack message listing ``alerts``: company, before, now, drop and reason."""
    snapshot = max(a.snapshot_date for a in alerts) if alerts else None
    noun = "company's" if len(alerts) == 1 else "companies'"
    lines = [f"*{len(alerts)} {noun} average objective health dropped* (snapshot {snapshot})"]
    for alert in alerts[:max_lines]:
        name = alert.company_name or alert.company_id
        lines.append(
            f"• {name} ({alert.company_id}): {alert.health_before:.2f} → {alert.health_now:.2f}"
            f" ({alert.reason})"
        )
    if len(alerts) > max_lines:
        lines.append(f"… and {len(alerts) - max_lines} more: SELECT * FROM company_health_alerts")
    return "\n".join(lines)


def post_webhook(
    url: str,
    payload: Mapping[str, Any],
    *,
    timeout: float = 5.0,
    max_attempts: int = 3,
    backoff: float = 1.0,
    budget: float = 20.0,
) -> WebhookOutcome:
    """POST ``payload`` as JSON to ``url``; never raises for a delivery failure.

    Sends at most ``max_attempts`` requests of at most ``timeout`` seconds each,
    waiting ``backoff`` x 2^n between them, and starts no attempt whose wait
    would end after ``budget`` seconds: the call returns within about
    ``budget + timeout`` seconds. Any 2xx is delivered; a 4xx other than 429 is
    not retried (the URL or payload is wrong, retrying will not help).
    """
    host = webhook_host(url)
    started = time.monotonic()
    attempts = 0

    def send(client: httpx.Client) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        return client.post(url, json=dict(payload))

    retrying = Retrying(
        stop=stop_after_attempt(max_attempts) | stop_before_delay(budget),
        wait=wait_exponential(multiplier=backoff, max=max(budget, backoff)),
        retry=retry_if_exception_type(httpx.TransportError) | retry_if_result(_retryable),
        reraise=False,
    )
    response: httpx.Response | None = None
    error: str | None = None
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            response = retrying(send, client)
    except RetryError as exhausted:
        last = exhausted.last_attempt
        if last.failed:
            error = _describe(last.exception(), url, host)
        else:
            response = last.result()
    except Exception as failure:  # not retryable (an invalid URL...): reported, never raised
        error = _describe(failure, url, host)
    status = response.status_code if response is not None else None
    delivered = status is not None and 200 <= status < 300
    if not delivered and error is None:
        error = f"{host} answered HTTP {status}"
    return WebhookOutcome(
        delivered=delivered,
        attempts=attempts,
        host=host,
        status_code=status,
        error=None if delivered else error,
        seconds=time.monotonic() - started,
    )


def _retryable(response: httpx.Response) -> bool:
    return response.status_code == 429 or response.status_code >= 500


def _describe(failure: BaseException | None, url: str, host: str) -> str:
    text = f"{type(failure).__name__}: {failure}" if failure else "no answer"
    return f"could not reach {host}: {text.replace(url, host)}"
