"""The outermost ASGI layer: request log, rate-limit headers, auth and request-level faults."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from objectives_pipeline.sandbox.app import SandboxContext

HEALTH_PATH = "/__sandbox/health"
"""Unauthenticated liveness route, exempt from faults. Sandbox only: Planhat has no such route."""

_ERROR_BODIES = {
    500: ("application/json", b'{"error":"Internal server error"}'),
    502: ("text/html; charset=utf-8", b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    503: ("text/plain; charset=utf-8", b"Service Unavailable"),
}


@dataclass(frozen=True)
class RequestRecord:
    """One request as the sandbox saw it. `status` 0 means the connection was dropped."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    n_items: int | None
    time: float
    fault: str | None = None


class FaultMiddleware:
    """Outermost ASGI layer: logging, rate-limit headers, auth and request-level faults."""

    def __init__(self, app: ASGIApp, ctx: SandboxContext) -> None:
        self.app = app
        self.ctx = ctx
        self._expected = f"Bearer {ctx.token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        notes: dict[str, Any] = {"n_items": None, "fault": None, "recorded": False}
        scope["sandbox"] = notes
        engine = self.ctx.engine

        def record(status: int) -> None:
            # Logged before the response leaves, so a client never sees it before the log does.
            if notes["recorded"]:
                return
            notes["recorded"] = True
            self.ctx.request_log.append(
                RequestRecord(
                    method=scope["method"],
                    path=scope["path"],
                    query=dict(parse_qsl(scope["query_string"].decode("latin-1"))),
                    status=status,
                    n_items=notes["n_items"],
                    time=time.time(),
                    fault=notes["fault"],
                )
            )

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                record(message["status"])
                message["headers"] = [*message.get("headers", []), *engine.rate_limit_headers()]
            await send(message)

        try:
            await self._handle(scope, receive, send, send_with_headers, notes, record)
        except BaseException:
            record(500)  # uvicorn answers 500 when the app fails before responding
            raise
        record(0)

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        raw_send: Send,
        send: Send,
        notes: dict[str, Any],
        record: Callable[[int], None],
    ) -> None:
        if scope["path"] == HEALTH_PATH:
            await self.app(scope, receive, send)
            return
        engine = self.ctx.engine
        faults = engine.faults
        delay = faults.latency_ms + faults.latency_jitter_ms * engine.rng.random()
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        if engine.roll(faults.drop_rate):
            notes["fault"] = "drop"
            record(0)
            await _drop_connection(raw_send)
            return
        if not self._authorised(scope):
            await _reply(send, 401, "application/json", b'{"error":"Unauthorized"}')
            return
        if engine.token_expired():
            notes["fault"] = "token_expired"
            await _reply(send, 401, "application/json", b'{"error":"Token expired"}')
            return
        reason = engine.throttle()
        if reason is not None:
            notes["fault"] = reason
            headers = engine.retry_after_header(reason)
            await _reply(send, 429, "text/plain; charset=utf-8", b"Too many requests", headers)
            return
        if engine.roll(faults.error_rate):
            status = engine.error_status()
            notes["fault"] = f"error_{status}"
            content_type, body = _ERROR_BODIES[status]
            await _reply(send, status, content_type, body)
            return
        await self.app(scope, receive, send)

    def _authorised(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(
                    b"Bearer " + token.strip(), self._expected
                )
        return False


async def _reply(
    send: Send,
    status: int,
    content_type: str,
    body: bytes,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *(extra_headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _drop_connection(send: Send) -> None:
    """Close the connection without a response.

    ASGI has no "abort" message, so this reaches uvicorn's transport behind its
    `send` callable. Without that transport it falls back to promising a body
    it never sends, which the server ends by closing the connection.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None and hasattr(transport, "close"):
        transport.close()
        for _ in range(3):  # let uvicorn see connection_lost before the app returns
            await asyncio.sleep(0)
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1024")]}
    )
    await send({"type": "http.response.body", "body": b"", "more_body": True})
