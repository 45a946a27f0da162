"""Sending one request: throttling, retries, status mapping and body parsing.

Errors are raised outside ``except`` blocks on purpose: an httpx exception
holds its request, headers (and so the token) included, and must not ride
along as ``__cause__`` or ``__context__``.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from pydantic import SecretStr, TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from .config import MAX_CONCURRENCY, RetryPolicy
from .errors import (
    APIError,
    AuthError,
    BadRequestError,
    BadResponseError,
    NotFoundError,
    PlanhatConnectionError,
    PlanhatError,
    PlanhatTimeoutError,
    PlanhatTransportError,
    RateLimitedError,
    ServerError,
    _RequestError,
)
from .models import RECORD_IDS, RECORDS
from .ratelimit import InFlightLimit, Pacer, RateLimiter
from .stats import StatsRecorder

logger = logging.getLogger("objectives_pipeline.planhat")

Expect = Literal["list", "list_ids", "object", "object_or_empty"]
_OBJECT = TypeAdapter(dict[str, Any])
_MAX_MESSAGE = 500
_JSON_BODY = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    label: str
    expect: Expect
    idempotent: bool
    params: Mapping[str, str] | None = None
    content: bytes | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    data: Any
    request_number: int
    attempts: int


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or HTTP date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        current = datetime.now(UTC).timestamp() if now is None else now
        seconds = when.timestamp() - current
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _header_int(headers: httpx.Headers, name: str) -> int | None:
    try:
        return int(headers.get(name, ""))
    except ValueError:
        return None


class Throttle:
    """Everything a request waits for before it is sent.

    The client-side rate limit, pauses the server asked for (``Retry-After``)
    and, with `RetryPolicy.pace_to_server`, pacing to the server's advertised
    allowance and the adaptive in-flight limit (see `Pacer`, `InFlightLimit`).
    """

    def __init__(
        self, limiter: RateLimiter | None, policy: RetryPolicy, stats: StatsRecorder
    ) -> None:
        self._limiter = limiter
        self._stats = stats
        self._pacer = Pacer() if policy.pace_to_server else None
        self._in_flight = InFlightLimit(MAX_CONCURRENCY) if policy.pace_to_server else None
        self._pause_until = 0.0
        self._lock = threading.Lock()

    def enter(self) -> int:
        """Take an in-flight slot (blocking); the ticket goes to `leave`."""
        return self._in_flight.acquire() if self._in_flight is not None else 0

    def leave(self, ticket: int, *, throttled: bool) -> None:
        if self._in_flight is not None and self._in_flight.release(ticket, throttled=throttled):
            self._stats.in_flight_cut(self._in_flight.limit)

    def wait_turn(self) -> None:
        """Wait until this request may be sent; `observe` or `cancel` must follow."""
        waited = 0.0
        with self._lock:
            pause = self._pause_until - time.monotonic()
        if pause > 0:
            time.sleep(pause)
            waited += pause
        if self._limiter is not None:
            waited += self._limiter.acquire()
        self._stats.rate_limit_wait(waited)
        if self._pacer is not None:
            self._stats.paced(self._pacer.acquire())

    def pause_for(self, seconds: float) -> None:
        with self._lock:
            self._pause_until = max(self._pause_until, time.monotonic() + seconds)

    def observe(self, headers: httpx.Headers, *, throttled: bool) -> None:
        """Learn the server's allowance from the ``X-Rate-Limit-*`` headers of an answer."""
        if self._pacer is None:
            return
        limit = _header_int(headers, "x-rate-limit-limit")
        remaining = _header_int(headers, "x-rate-limit-remaining")
        self._pacer.observe(limit, remaining, throttled=throttled)
        self._stats.server_allowance(self._pacer.limit, self._pacer.window)

    def retry_hint(self) -> float | None:
        """When a 429 without Retry-After may be retried, from the learned window (or None)."""
        return self._pacer.retry_hint() if self._pacer is not None else None

    def cancel(self) -> None:
        """The request got no answer."""
        if self._pacer is not None:
            self._pacer.cancel()


class Sender:
    """Sends requests with retries; thread-safe."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        token: SecretStr | None,
        policy: RetryPolicy,
        limiter: RateLimiter | None,
        stats: StatsRecorder,
    ) -> None:
        self._http = http
        self._token = token
        self._policy = policy
        self._stats = stats
        self._throttle = Throttle(limiter, policy, stats)
        self._backoff = wait_exponential_jitter(
            multiplier=policy.initial_backoff, max=policy.max_backoff, jitter=policy.jitter
        )

    def send(self, request: Request) -> Reply:
        """Send with retries; raise the last error (with its attempt count) when they run out."""
        attempts = 0

        def once() -> Reply:
            nonlocal attempts
            attempts += 1
            return self._attempt(request, attempts)

        retrying = Retrying(
            stop=stop_after_attempt(self._policy.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda exc: self._retryable(exc, request)),
            before_sleep=lambda state: self._before_sleep(state, request),
            reraise=True,
        )
        try:
            return retrying(once)
        except _RequestError as exc:
            exc.attempts = attempts
            raise

    def _attempt(self, request: Request, attempt: int) -> Reply:
        ticket = self._throttle.enter()
        throttled = False
        try:
            self._throttle.wait_turn()
            number = self._stats.request_sent()
            response = self._exchange(request)
            if isinstance(response, httpx.Response):
                throttled = response.status_code == 429
                self._throttle.observe(response.headers, throttled=throttled)
            else:
                self._throttle.cancel()
        finally:
            self._throttle.leave(ticket, throttled=throttled)
        if isinstance(response, BadResponseError):
            self._stats.bad_response()
            raise response
        if isinstance(response, PlanhatError):
            self._stats.transport_error()
            raise response
        self._stats.response(response.status_code)
        self._stats.quota_remaining(_header_int(response.headers, "x-rate-limit-remaining"))
        if not response.is_success:
            raise self._status_error(request, response)
        body = response.content
        data = self._parse(request, body)
        logger.debug("%s -> HTTP %d (%d bytes)", request.label, response.status_code, len(body))
        return Reply(response.status_code, body, data, number, attempt)

    def _exchange(self, request: Request) -> httpx.Response | PlanhatError:
        """The response, or the error to raise (returned so that it carries no httpx context)."""
        deadline = time.monotonic() + self._policy.request_deadline
        try:
            with self._http.stream(
                request.method,
                request.path,
                params=request.params,
                content=request.content,
                headers=_JSON_BODY if request.content is not None else None,
            ) as streamed:
                chunks = []
                for chunk in streamed.iter_raw():
                    chunks.append(chunk)
                    if time.monotonic() > deadline:
                        return self._deadline_passed(request)
            # The raw bytes and headers, so that the body is decoded as usual on reading.
            response = httpx.Response(
                streamed.status_code,
                headers=streamed.headers,
                content=b"".join(chunks),
                request=streamed.request,
            )
            response.read()
            return response
        except httpx.TimeoutException as exc:
            return self._timeout(request, exc)
        except httpx.DecodingError as exc:
            return BadResponseError(
                f"Planhat's response could not be decoded ({type(exc).__name__})",
                request=request.label,
            )
        except httpx.RequestError as exc:
            return self._connection(request, exc)

    def _parse(self, request: Request, body: bytes) -> Any:
        if not body.strip():
            if request.expect == "object_or_empty":
                return {}
            return self._bad_body(request, "an empty body where JSON was expected")
        try:
            if request.expect == "list":
                return RECORDS.validate_json(body)
            if request.expect == "list_ids":
                return RECORD_IDS.validate_json(body)
            return _OBJECT.validate_json(body)
        except PydanticValidationError as exc:
            problem = exc.errors()[0]["type"] if exc.error_count() else "invalid"
        if problem.startswith("json"):
            what = "not valid JSON (truncated or not JSON)"
        else:
            what = (
                "not a JSON array of objects"
                if request.expect in ("list", "list_ids")
                else "not a JSON object"
            )
        excerpt = self._redact(body[:80].decode("utf-8", "replace"))
        return self._bad_body(request, f"a {len(body)}-byte body that is {what}: {excerpt!r}")

    def _bad_body(self, request: Request, problem: str) -> Any:
        self._stats.bad_response()
        raise BadResponseError(
            f"Planhat answered with {problem}. Retry later; if it persists, check that "
            "PLANHAT_BASE_URL points at the Planhat API and not at a proxy or web page",
            request=request.label,
        )

    def _timeout(self, request: Request, exc: httpx.TimeoutException) -> PlanhatTimeoutError:
        sent = not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
        return PlanhatTimeoutError(
            f"Planhat did not answer in time ({type(exc).__name__}). Raise the client's "
            "timeout, lower the page size or concurrency, or try again later",
            request=request.label,
            request_sent=sent,
        )

    def _deadline_passed(self, request: Request) -> PlanhatTimeoutError:
        return PlanhatTimeoutError(
            f"Planhat's answer did not arrive within {self._policy.request_deadline:g} s: "
            "the body was still coming in. Try again later, or raise the request deadline "
            "(request_deadline_seconds) if the tenant is this slow",
            request=request.label,
            request_sent=True,
        )

    def _connection(self, request: Request, exc: httpx.RequestError) -> PlanhatConnectionError:
        sent = not isinstance(exc, httpx.ConnectError | httpx.UnsupportedProtocol)
        detail = self._redact(str(exc))[:_MAX_MESSAGE] or type(exc).__name__
        return PlanhatConnectionError(
            f"The connection to Planhat failed ({type(exc).__name__}: {detail}). Check "
            "PLANHAT_BASE_URL and the network, then try again",
            request=request.label,
            request_sent=sent,
        )

    def _status_error(self, request: Request, response: httpx.Response) -> APIError:
        status = response.status_code
        kind: type[APIError] = APIError
        if status == 401:
            kind, message = (
                AuthError,
                (
                    "Planhat rejected the API token. Check PLANHAT_API_TOKEN: it must be a "
                    "current private-app token of the tenant that PLANHAT_BASE_URL serves"
                ),
            )
        elif status == 403:
            kind, message = (
                AuthError,
                (
                    "The API token lacks the rights for this request. Give the private app "
                    "access to objectives in Planhat, or use a token that has it"
                ),
            )
        elif status == 404:
            kind, message = (
                NotFoundError,
                (
                    "Planhat found nothing here. Check the id (an _id, or an extid-/srcid- "
                    "reference must match an existing objective) and PLANHAT_BASE_URL"
                ),
            )
        elif status == 400:
            kind, message = (
                BadRequestError,
                ("Planhat rejected the request as invalid. Fix what the server message names"),
            )
        elif status == 429:
            kind, message = (
                RateLimitedError,
                (
                    "Planhat kept rate limiting the client. Lower rate_limit_per_minute or the "
                    "paging concurrency, or try again in a few minutes"
                ),
            )
        elif status >= 500:
            kind, message = (
                ServerError,
                (
                    "Planhat failed to handle the request. Try again later; if it persists, "
                    "report the request id to Planhat support"
                ),
            )
        else:
            message = f"Planhat answered with unexpected status {status}"
        error = kind(
            message,
            request=request.label,
            status=status,
            server_message=self._server_message(response.content),
            request_id=response.headers.get("x-request-id"),
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
        error._body = response.content
        return error

    def _server_message(self, body: bytes) -> str | None:
        if not body.strip():
            return None
        text = body.decode("utf-8", "replace")
        try:
            data = json.loads(text)
        except ValueError:
            data = text
        if isinstance(data, dict):
            found = next(
                (data[k] for k in ("message", "error", "msg", "errors", "detail") if data.get(k)),
                data,
            )
            data = found
        if not isinstance(data, str):
            data = json.dumps(data, ensure_ascii=False, default=str)
        data = " ".join(data.split())
        if len(data) > _MAX_MESSAGE:
            data = data[:_MAX_MESSAGE] + "…"
        return self._redact(data) or None

    def _redact(self, text: str) -> str:
        if self._token is not None:
            secret = self._token.get_secret_value()
            if secret:
                text = text.replace(secret, "[token]")
        return text

    def _retryable(self, exc: BaseException, request: Request) -> bool:
        """Retry what cannot have changed anything twice; see `PlanhatClient`."""
        if isinstance(exc, RateLimitedError):
            return True
        if isinstance(exc, PlanhatTransportError):
            return request.idempotent or not exc.request_sent
        if not request.idempotent:
            return False
        if isinstance(exc, ServerError):
            return True
        return isinstance(exc, BadResponseError) and exc.retryable

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = exc.retry_after if isinstance(exc, APIError) else None
        if retry_after is not None:
            return min(retry_after, self._policy.max_retry_after)
        backoff = float(self._backoff(state))
        if isinstance(exc, RateLimitedError):
            hint = self._throttle.retry_hint()
            if hint is not None:
                return min(backoff, hint)  # the pacer then spaces the retry
        return backoff

    def _before_sleep(self, state: RetryCallState, request: Request) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        self._stats.retry(wait)
        if isinstance(exc, APIError) and exc.retry_after is not None:
            self._throttle.pause_for(wait)
        logger.warning(
            "Retrying %s after %s (attempt %d of %d failed; waiting %.2fs)",
            request.label,
            _describe(exc),
            state.attempt_number,
            self._policy.max_attempts,
            wait,
        )


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, APIError):
        after = f", Retry-After {exc.retry_after:g}s" if exc.retry_after is not None else ""
        return f"HTTP {exc.status}{after}"
    if isinstance(exc, PlanhatTimeoutError):
        return "a timeout"
    if isinstance(exc, PlanhatConnectionError):
        return "a connection error"
    if isinstance(exc, BadResponseError):
        return "an unusable response body"
    return type(exc).__name__
