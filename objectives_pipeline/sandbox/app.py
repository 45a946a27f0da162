"""The sandbox's ASGI application: Planhat's objective and company routes, custom metrics
(the analytics host's ``/dimensiondata``, served on the same port) and fault injection."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from objectives_pipeline.sandbox.companies import InvalidCompany
from objectives_pipeline.sandbox.faults import FaultEngine
from objectives_pipeline.sandbox.middleware import HEALTH_PATH, FaultMiddleware, RequestRecord
from objectives_pipeline.sandbox.store import InvalidObjective, SandboxStore, dumps

SANDBOX_TENANT_UUID = "00000000-5a4d-4b0c-8000-000000000042"
"""The tenant UUID the sandbox accepts in ``POST /dimensiondata/<tenant>`` unless told otherwise."""

_HTML_ERROR_PAGE = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>502 Bad Gateway</h1><p>The upstream server is unavailable.</p></body></html>"
)


@dataclass
class SandboxContext:
    """Everything the routes and the fault middleware share."""

    store: SandboxStore
    engine: FaultEngine
    token: str = field(repr=False)
    request_log: list[RequestRecord] = field(default_factory=list)
    max_bulk_items: int = 5000
    max_limit: int = 2000
    max_company_limit: int = 5000
    tenant_uuid: str = SANDBOX_TENANT_UUID


def _json(value: Any, status: int = 200) -> Response:
    return Response(dumps(value), status_code=status, media_type="application/json")


def _error(message: str, status: int) -> Response:
    return _json({"error": message}, status)


def _notes(request: Request) -> dict[str, Any]:
    notes: dict[str, Any] = request.scope["sandbox"]
    return notes


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise _BadRequest("Body is not valid JSON") from exc


class _BadRequest(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _invalid(exc: InvalidObjective) -> Response:
    # Planhat answers 400 sometimes as plain text, sometimes as an object: both are served.
    if exc.field == "name":
        return PlainTextResponse(exc.message, status_code=400)
    return _error(exc.message, 400)


def _query_int(request: Request, name: str, default: int, minimum: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError as exc:
        raise _BadRequest(f"{name} must be an integer") from exc
    if value < minimum:
        raise _BadRequest(f"{name} must be at least {minimum}")
    return value


def _split(text: str | None) -> list[str] | None:
    """A comma-separated parameter as a list; None when absent or empty."""
    parts = [part.strip() for part in (text or "").split(",") if part.strip()]
    return parts or None


async def _trickle(body: bytes, bytes_per_second: float) -> AsyncIterator[bytes]:
    """`body` in chunks, one every 0.1 s; stops when the client goes away."""
    chunk = max(1, int(bytes_per_second / 10))
    for start in range(0, len(body), chunk):
        yield body[start : start + chunk]
        await asyncio.sleep(0.1)


def build_app(ctx: SandboxContext) -> ASGIApp:
    """The sandbox ASGI app for `ctx`."""

    async def health(request: Request) -> Response:
        return _json({"status": "ok", "sandbox": True, "pid": os.getpid()})

    async def list_objectives(request: Request) -> Response:
        faults = ctx.engine.faults
        limit = ctx.engine.list_page_cap(min(_query_int(request, "limit", 100, 1), ctx.max_limit))
        offset = _query_int(request, "offset", 0, 0)
        if faults.churn_per_list_request > 0:
            ctx.store.churn(
                faults.churn_per_list_request, ctx.engine.rng, anywhere=faults.churn_anywhere
            )
        body, count = ctx.store.list_page(
            offset=offset,
            limit=limit,
            sort=request.query_params.get("sort") or None,
            company_refs=_split(request.query_params.get("companyId")),
            select=_split(request.query_params.get("select")),
            order=faults.list_order,
            mangle=faults.page_mangle,
        )
        if ctx.engine.list_comes_back_empty():
            _notes(request)["fault"] = "empty_page"
            body, count = b"[]", 0
        _notes(request)["n_items"] = count
        if ctx.engine.roll(faults.non_json_rate):
            _notes(request)["fault"] = "non_json"
            return Response(_HTML_ERROR_PAGE, media_type="text/html; charset=utf-8")
        if ctx.engine.roll(faults.truncate_rate):
            _notes(request)["fault"] = "truncate"
            body = body[: len(body) // 2]
        if faults.trickle_bytes_per_second:
            _notes(request)["fault"] = "trickle"
            return StreamingResponse(
                _trickle(body, faults.trickle_bytes_per_second), media_type="application/json"
            )
        return Response(body, media_type="application/json")

    async def bulk_upsert(request: Request) -> Response:
        items = await _json_body(request)
        if not isinstance(items, list):
            raise _BadRequest("Body must be a JSON array of objectives")
        _notes(request)["n_items"] = len(items)
        if len(items) > ctx.max_bulk_items:
            raise _BadRequest(f"Too many items: {len(items)}, the maximum is {ctx.max_bulk_items}")
        faults = ctx.engine.faults
        crash_after = ctx.engine.bulk_crash_after()
        result = ctx.store.bulk_upsert(
            items if crash_after is None else items[:crash_after],
            failing_source_ids=set(faults.bulk_item_error_source_ids),
            forbidden_source_ids=set(faults.bulk_item_permission_source_ids),
        )
        if crash_after is not None:
            _notes(request)["fault"] = "bulk_500"
            return _error("Internal server error", 500)
        failed = result["createdErrors"] or result["updatedErrors"] or result["permissionErrors"]
        return _json(result, 206 if failed else 200)

    async def create_objective(request: Request) -> Response:
        item = await _json_body(request)
        if not isinstance(item, dict):
            raise _BadRequest("Body must be a JSON object")
        try:
            return _json(ctx.store.create(item))
        except InvalidObjective as exc:
            return _invalid(exc)

    async def get_objective(request: Request) -> Response:
        raw = ctx.store.get_raw(request.path_params["ref"])
        if raw is None:
            return _error("Objective not found", 404)
        return Response(raw, media_type="application/json")

    async def update_objective(request: Request) -> Response:
        changes = await _json_body(request)
        if not isinstance(changes, dict):
            raise _BadRequest("Body must be a JSON object")
        try:
            updated = ctx.store.update(request.path_params["ref"], changes)
        except InvalidObjective as exc:
            return _invalid(exc)
        if updated is None:
            return _error("Objective not found", 404)
        return _json(updated)

    async def delete_objective(request: Request) -> Response:
        if not ctx.store.delete(request.path_params["ref"]):
            return _error("Objective not found", 404)
        return _json({"n": 1, "ok": 1, "deletedCount": 1})

    async def list_companies(request: Request) -> Response:
        limit = min(_query_int(request, "limit", 100, 1), ctx.max_company_limit)
        if ctx.engine.faults.page_cap is not None:
            limit = min(limit, max(ctx.engine.faults.page_cap, 0))
        page = ctx.store.company_page(
            offset=_query_int(request, "offset", 0, 0),
            limit=limit,
            sort=request.query_params.get("sort") or None,
            select=_split(request.query_params.get("select")),
        )
        _notes(request)["n_items"] = len(page)
        return _json(page)

    async def lean_companies(request: Request) -> Response:
        companies = ctx.store.lean_companies()
        for key in ("externalId", "sourceId"):
            wanted = request.query_params.get(key)
            if wanted is not None:
                companies = [c for c in companies if str(c.get(key)) == wanted]
        _notes(request)["n_items"] = len(companies)
        return _json(companies)

    async def get_company(request: Request) -> Response:
        company = ctx.store.resolve_company(request.path_params["ref"])
        if company is None:
            return _error("Company not found", 404)
        return _json(company)

    async def update_company(request: Request) -> Response:
        changes = await _json_body(request)
        if not isinstance(changes, dict):
            raise _BadRequest("Body must be a JSON object")
        try:
            updated = ctx.store.update_company(request.path_params["ref"], changes)
        except InvalidCompany as exc:
            return _error(str(exc), 400)
        if updated is None:
            return _error("Company not found", 404)
        return _json(updated)

    async def bulk_upsert_companies(request: Request) -> Response:
        items = await _json_body(request)
        if not isinstance(items, list):
            raise _BadRequest("Body must be a JSON array of companies")
        _notes(request)["n_items"] = len(items)
        if len(items) > ctx.max_bulk_items:
            raise _BadRequest(f"Too many items: {len(items)}, the maximum is {ctx.max_bulk_items}")
        faults = ctx.engine.faults
        result = ctx.store.bulk_upsert_companies(
            items,
            failing=set(faults.bulk_item_error_source_ids),
            forbidden=set(faults.bulk_item_permission_source_ids),
        )
        failed = result["createdErrors"] or result["updatedErrors"] or result["permissionErrors"]
        return _json(result, 206 if failed else 200)

    async def post_metrics(request: Request) -> Response:
        if request.path_params["tenant"].lower() != ctx.tenant_uuid:
            return _error("Unknown tenant", 404)
        body = await _json_body(request)
        items = body if isinstance(body, list) else [body]
        _notes(request)["n_items"] = len(items)
        today = (date.today() - date(1970, 1, 1)).days
        return _json(ctx.store.add_metrics(items, today))

    async def read_metrics(request: Request) -> Response:
        first = _query_int(request, "from", 0, 0)
        last = _query_int(request, "to", 10**6, 0)
        rows = ctx.store.read_metrics(
            request.query_params.get("cId") or None,
            request.query_params.get("dimid") or None,
            first,
            last,
        )
        _notes(request)["n_items"] = len(rows)
        return _json(rows)

    def guarded(endpoint: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def run(request: Request) -> Response:
            try:
                response: Response = await endpoint(request)
            except _BadRequest as exc:
                return _error(exc.message, 400)
            return response

        return run

    starlette = Starlette(
        routes=[
            Route(HEALTH_PATH, health, methods=["GET"]),
            Route("/objectives", guarded(list_objectives), methods=["GET"]),
            Route("/objectives", guarded(bulk_upsert), methods=["PUT"]),
            Route("/objectives", guarded(create_objective), methods=["POST"]),
            Route("/objectives/{ref}", guarded(get_objective), methods=["GET"]),
            Route("/objectives/{ref}", guarded(update_objective), methods=["PUT"]),
            Route("/objectives/{ref}", guarded(delete_objective), methods=["DELETE"]),
            Route("/companies", guarded(list_companies), methods=["GET"]),
            Route("/companies", guarded(bulk_upsert_companies), methods=["PUT"]),
            Route("/companies/{ref}", guarded(get_company), methods=["GET"]),
            Route("/companies/{ref}", guarded(update_company), methods=["PUT"]),
            Route("/leancompanies", guarded(lean_companies), methods=["GET"]),
            Route("/dimensiondata/{tenant}", guarded(post_metrics), methods=["POST"]),
            Route("/dimensiondata", guarded(read_metrics), methods=["GET"]),
        ]
    )
    return FaultMiddleware(starlette, ctx)
