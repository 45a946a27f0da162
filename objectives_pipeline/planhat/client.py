"""`PlanhatClient`: the Planhat Objectives API over httpx."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx
from pydantic import SecretStr
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticSerializationError, to_json

from objectives_pipeline.settings import (
    DEFAULT_ANALYTICS_URL,
    DEFAULT_BASE_URL,
    DEFAULT_BATCH_SIZE,
    DEFAULT_PAGES_IN_FLIGHT,
    DEFAULT_RATE_LIMIT_PER_MINUTE,
    DEFAULT_TIMEOUT_SECONDS,
    read_env,
)

from . import query
from ._http import Expect, Reply, Request, Sender
from .bulk import BatchOutcome, BulkUpsertResult, batch_result, has_keyable
from .config import (
    MAX_BULK_BATCH,
    MAX_COMPANY_PAGE_SIZE,
    MAX_CONCURRENCY,
    MAX_PAGE_SIZE,
    RetryPolicy,
    check_base_url,
    coerce_token,
)
from .errors import (
    AuthError,
    BadResponseError,
    ConfigError,
    InvalidItemError,
    InvalidObjectiveError,
    NotFoundError,
)
from .metrics import (
    MAX_METRIC_BATCH,
    MetricItem,
    MetricsResult,
    batch_errors,
    check_tenant_uuid,
    metric_batches,
    metric_payloads,
)
from .models import Company, DeleteResult, Objective, ObjectiveIn, ObjectivePage, PageParse
from .paging import guard_progress, page_concurrently
from .ratelimit import RateLimiter
from .refs import CompanyRef, ObjectiveRef
from .snapshot import SnapshotPage, SnapshotStats, snapshot_pages
from .stats import ClientStats, StatsRecorder

CompanyFilter = str | CompanyRef | Sequence[str | CompanyRef] | None
Select = str | Sequence[str] | None
ObjectiveId = str | ObjectiveRef
BulkItem = ObjectiveIn | Mapping[str, Any]
_OBJECTIVES = "/objectives"
_COMPANIES = "/companies"


class PlanhatClient:
    """A client for Planhat's Objectives API. Thread-safe; use it as a context manager.

    Retries: 429, 5xx, connection errors, timeouts and unusable 2xx bodies are
    retried with exponential backoff and jitter (or the server's Retry-After),
    as `retry` says. Only requests that are safe to repeat are retried after
    they may have reached Planhat: reads, updates, deletes, and bulk batches in
    which every item has a keyable (``_id``, ``sourceId`` or ``externalId``).
    `create_objective`, and bulk batches with an item without keyables, are
    retried only when nothing can have been written (the connection was never
    made, or the answer was 429): a retry could otherwise create duplicates.

    Rate: at most `rate_limit_per_minute` requests per sliding minute, retries
    included (None: no client-side limit; `rate_limiter` replaces it, e.g. to
    share one limit between clients). The client also paces to the allowance
    the server advertises in ``X-Rate-Limit-*`` headers and halves the
    requests it has in flight on a 429 (see `RetryPolicy.pace_to_server`).

    `stats` counts requests, retries and waits; `max_in_flight` is the default
    number of concurrent page requests of `iter_pages`.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        token: str | SecretStr | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT_SECONDS,
        retry: RetryPolicy | None = None,
        rate_limit_per_minute: int | None = DEFAULT_RATE_LIMIT_PER_MINUTE,
        rate_limiter: RateLimiter | None = None,
        max_in_flight: int = DEFAULT_PAGES_IN_FLIGHT,
        max_query_length: int = query.MAX_QUERY_LENGTH,
        transport: httpx.BaseTransport | None = None,
        tenant_uuid: str | None = None,
        analytics_url: str = DEFAULT_ANALYTICS_URL,
    ) -> None:
        self._token = coerce_token(token)
        self._base_url = check_base_url(base_url, self._token)
        self._max_in_flight = _check_concurrency(max_in_flight, "max_in_flight")
        _check_timeout(timeout)
        if rate_limiter is None and rate_limit_per_minute is not None:
            rate_limiter = RateLimiter.per_minute(_check_rate(rate_limit_per_minute))
        if max_query_length < 100:
            raise ConfigError(f"max_query_length must be at least 100, got {max_query_length!r}")
        self._max_query_length = max_query_length
        self.retry = retry or RetryPolicy()
        self._stats = StatsRecorder()
        self._tenant_uuid = check_tenant_uuid(tenant_uuid)
        # Without a token nothing secret travels, and the analytics host is only used for metrics.
        self._analytics_url = (
            check_base_url(analytics_url, self._token)
            if self._token is not None
            else str(analytics_url).strip().rstrip("/")
        )
        self._http = self._http_client(self._base_url, timeout, transport)
        self._sender = self._sender_for(self._http, rate_limiter)
        # The analytics host's connection is opened on the first `push_metrics`.
        self._analytics_options = (timeout, transport, rate_limiter)
        self._analytics_http: httpx.Client | None = None
        self._analytics: Sender | None = None
        self._analytics_lock = threading.Lock()

    def _http_client(
        self, base_url: str, timeout: float | httpx.Timeout, transport: httpx.BaseTransport | None
    ) -> httpx.Client:
        headers = {"Accept": "application/json", "User-Agent": "objectives-pipeline"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        return httpx.Client(
            base_url=base_url,
            headers=headers,
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(
                max_connections=MAX_CONCURRENCY, max_keepalive_connections=MAX_CONCURRENCY
            ),
        )

    def _sender_for(self, http: httpx.Client, limiter: RateLimiter | None) -> Sender:
        return Sender(http, token=self._token, policy=self.retry, limiter=limiter, stats=self._stats)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> PlanhatClient:
        """A client for ``PLANHAT_BASE_URL`` (default https://api.planhat.com) with
        ``PLANHAT_API_TOKEN``; metrics go to ``PLANHAT_ANALYTICS_URL`` (default
        https://analytics.planhat.com) for ``PLANHAT_TENANT_UUID``. `options` go to
        the constructor."""
        settings = read_env(environ)
        options.setdefault("tenant_uuid", settings.tenant_uuid)
        if settings.analytics_url:
            options.setdefault("analytics_url", settings.analytics_url)
        return cls(settings.base_url or DEFAULT_BASE_URL, settings.api_token, **options)

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def has_token(self) -> bool:
        return self._token is not None

    @property
    def stats(self) -> ClientStats:
        """A snapshot of the counters since creation or the last `reset_stats`."""
        return self._stats.snapshot()

    def reset_stats(self) -> ClientStats:
        """Zero the counters; return their values before."""
        return self._stats.snapshot(reset=True)

    @property
    def analytics_url(self) -> str:
        return self._analytics_url

    @property
    def tenant_uuid(self) -> str | None:
        return self._tenant_uuid

    def close(self) -> None:
        self._http.close()
        with self._analytics_lock:
            if self._analytics_http is not None:
                self._analytics_http.close()

    def _analytics_sender(self) -> Sender:
        with self._analytics_lock:
            if self._analytics is None:
                timeout, transport, limiter = self._analytics_options
                self._analytics_http = self._http_client(self._analytics_url, timeout, transport)
                self._analytics = self._sender_for(self._analytics_http, limiter)
            return self._analytics

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        token = "'**********'" if self._token is not None else "None"
        return f"PlanhatClient(base_url={self._base_url!r}, token={token})"

    # -- companies and metrics ------------------------------------------------

    def list_companies(
        self,
        *,
        limit: int | None = None,
        offset: int = 0,
        sort: str | None = "_id",
        select: Select = None,
    ) -> list[Company]:
        """One page of ``GET /companies`` (Planhat's default page size is 100, max 5,000)."""
        if limit is not None:
            _check_limit(limit, MAX_COMPANY_PAGE_SIZE)
        params = self._list_queries(None, sort=sort, select=select)[0]
        if limit is not None:
            params["limit"] = str(limit)
        params["offset"] = str(_check_offset(offset))
        request = self._get_list(_COMPANIES, params, offset=offset, limit=limit)
        return [_company(r, request.label) for r in self._sender.send(request).data]

    def iter_companies(
        self,
        *,
        limit: int = MAX_COMPANY_PAGE_SIZE,
        sort: str | None = "_id",
        select: Select = None,
        concurrency: int | None = None,
    ) -> Iterator[Company]:
        """Every company, paged like `iter_pages` (up to 5,000 per page)."""
        _check_limit(limit, MAX_COMPANY_PAGE_SIZE)
        workers = _check_concurrency(
            self._max_in_flight if concurrency is None else concurrency, "concurrency"
        )
        queries = self._list_queries(None, sort=sort, select=select)
        pages = self._pages(_COMPANIES, queries, limit=limit, concurrency=workers)
        return (
            _company(record, f"GET /companies offset={page.offset} limit={page.limit}")
            for page in pages
            for record in page.records
        )

    def list_lean_companies(self) -> list[Company]:
        """Every company's ``_id``, ``name``, ``externalId`` and ``sourceId`` in one request."""
        request = Request(
            "GET", "/leancompanies", label="GET /leancompanies", expect="list", idempotent=True
        )
        return [_company(r, request.label) for r in self._sender.send(request).data]

    def get_company(self, ref: str | CompanyRef) -> Company:
        """One company by ``_id`` or `CompanyRef` (``extid-…``, ``srcid-…``)."""
        request = self._one("GET", ref, idempotent=True, model=_COMPANIES)
        return _company(self._sender.send(request).data, request.label)

    def update_company(self, ref: str | CompanyRef, fields: Mapping[str, Any]) -> Company:
        """Change the given fields of one company, e.g. ``{"custom": {"Tier": "Gold"}}``."""
        if not isinstance(fields, Mapping) or not fields:
            raise InvalidItemError("update_company needs a non-empty mapping of fields")
        content = _json(dict(fields))
        request = self._one("PUT", ref, idempotent=True, content=content, model=_COMPANIES)
        return _company(self._sender.send(request).data, request.label)

    def bulk_upsert_companies(
        self,
        companies: Iterable[Mapping[str, Any]],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        on_batch: Callable[[BulkUpsertResult], None] | None = None,
    ) -> BulkUpsertResult:
        """Upsert companies with ``PUT /companies``, as `bulk_upsert` does objectives.

        Matched by ``_id``, then ``sourceId``, then ``externalId``; creating one needs `name`.
        """
        return self._bulk_upsert(_COMPANIES, companies, batch_size=batch_size, on_batch=on_batch)

    def push_metrics(
        self,
        items: Iterable[MetricItem | Mapping[str, Any]],
        *,
        batch_size: int = MAX_METRIC_BATCH,
    ) -> MetricsResult:
        """Send custom metric values to ``POST <analytics_url>/dimensiondata/<tenant UUID>``.

        Items are checked first (nothing is sent if one is invalid), then sent in
        requests of at most `batch_size` (≤ 5,000) items and 32 MB. Planhat keeps one
        value per company, metric and day, so a resent batch is harmless and retried.
        """
        if self._tenant_uuid is None:
            raise ConfigError(
                "Custom metrics need the tenant UUID: set PLANHAT_TENANT_UUID (Planhat > "
                "Settings > Private apps shows it) or pass tenant_uuid=..."
            )
        if isinstance(batch_size, bool) or not 1 <= batch_size <= MAX_METRIC_BATCH:
            raise ConfigError(
                f"batch_size must be an integer from 1 to {MAX_METRIC_BATCH}, got {batch_size!r}"
            )
        payloads = metric_payloads(items)
        result = MetricsResult(items=len(payloads))
        sender = self._analytics_sender()
        path = f"/dimensiondata/{self._tenant_uuid}"
        for offset, count, body in metric_batches(payloads, batch_size=batch_size):
            label = f"POST /dimensiondata/<tenant> first_item={offset}"
            request = Request(
                "POST", path, label=label, expect="object", idempotent=True, content=body
            )
            reply = sender.send(request)
            sent = payloads[offset : offset + count]
            processed, errors = batch_errors(reply.data, sent, offset)
            result = result.model_copy(
                update={
                    "processed": result.processed + processed,
                    "errors": result.errors + errors,
                    "requests": result.requests + 1,
                }
            )
        return result

    # -- reading --------------------------------------------------------------

    def list_objectives(
        self,
        *,
        company_id: CompanyFilter = None,
        limit: int | None = None,
        offset: int = 0,
        sort: str | None = "_id",
        select: Select = None,
    ) -> list[Objective]:
        """One page of objectives (Planhat's default page size is 100).

        Several company ids are sent comma-joined; when they would make the query
        longer than `max_query_length`, they are split over several requests, each
        with the same limit and offset, and the results concatenated.
        """
        if limit is not None:
            _check_limit(limit)
        _check_offset(offset)
        objectives: list[Objective] = []
        for params in self._list_queries(company_id, sort=sort, select=select):
            if limit is not None:
                params["limit"] = str(limit)
            params["offset"] = str(offset)
            request = self._get_list(_OBJECTIVES, params, offset=offset, limit=limit)
            reply = self._sender.send(request)
            objectives.extend(_objective(r, request.label) for r in reply.data)
        return objectives

    def iter_pages(
        self,
        *,
        limit: int = MAX_PAGE_SIZE,
        sort: str | None = "_id",
        select: Select = None,
        company_id: CompanyFilter = None,
        concurrency: int | None = None,
        parse: PageParse = "records",
    ) -> Iterator[ObjectivePage]:
        """Every page of ``GET /objectives``, in offset order, until an empty page.

        The offset advances by the records received, so a server that returns
        fewer than `limit` loses nothing. `concurrency` (default `max_in_flight`)
        requests are kept in flight; the result is the same as with 1. Sorted by
        ``_id`` unless `sort` says otherwise (None: the server's order). A company
        list too long for one query is paged query after query; `offset` then
        restarts at 0 for each.

        Offset paging has no snapshot isolation: objectives created or deleted
        while paging can be skipped or repeated. `iter_snapshot_pages` checks
        every page boundary instead, when completeness matters.

        ``parse="ids"`` still checks that each body is a JSON array of objects, but
        keeps only each record's ``_id`` in `ObjectivePage.records`: several times
        cheaper, for callers that keep the raw `ObjectivePage.body`.
        """
        _check_limit(limit)
        workers = _check_concurrency(
            self._max_in_flight if concurrency is None else concurrency, "concurrency"
        )
        queries = self._list_queries(company_id, sort=sort, select=select)
        return self._pages(_OBJECTIVES, queries, limit=limit, concurrency=workers, parse=parse)

    def _pages(
        self,
        path: str,
        queries: list[dict[str, str]],
        *,
        limit: int,
        concurrency: int,
        parse: PageParse = "records",
    ) -> Iterator[ObjectivePage]:
        for params in queries:
            fetch = self._page_fetcher(path, params, parse)
            yield from guard_progress(
                page_concurrently(fetch, start=0, limit=limit, concurrency=concurrency)
            )

    def iter_snapshot_pages(
        self,
        *,
        limit: int = MAX_PAGE_SIZE,
        concurrency: int | None = None,
        stats: SnapshotStats | None = None,
        expected: int | None = None,
        deadline: float | None = None,
    ) -> Iterator[SnapshotPage]:
        """Every objective in one pass that proves its own completeness, or fails saying why.

        Pages sorted by ``_id`` overlap by one record and every boundary is checked; a
        boundary that objectives deleted meanwhile may have opened is read again. The order
        itself is checked; when the server does not keep it, the pages are read again in
        the server's own order, chained by the records they share (see
        `objectives_pipeline.planhat.snapshot`; `stats.completeness_proof` says which ran).
        Each objective that exists for the whole pass is in the pages; records repeat at
        boundaries (`SnapshotPage.repeats_first` marks the exact one-record overlap). Pages
        keep the raw `ObjectivePage.body` and only each record's ``_id`` in `records`.
        `stats` is filled in on the way. `expected` (about how many objectives there are,
        e.g. the last snapshot's size) keeps the window from sending pages past the end; it
        never changes the result. `deadline` (a `time.monotonic()` value): no request starts
        after it.
        """
        _check_limit(limit)
        if limit < 2:
            raise ConfigError(f"limit must be at least 2 for overlapping pages, got {limit!r}")
        workers = _check_concurrency(
            self._max_in_flight if concurrency is None else concurrency, "concurrency"
        )
        fetch = self._page_fetcher(_OBJECTIVES, {"sort": "_id"}, "ids")
        return snapshot_pages(
            fetch,
            limit=limit,
            in_flight=workers,
            stats=stats,
            expected=expected,
            exists=self.objective_exists,
            deadline=deadline,
        )

    def objective_page(
        self, *, offset: int = 0, limit: int = MAX_PAGE_SIZE, sort: str | None = "_id"
    ) -> ObjectivePage:
        """One page of ``GET /objectives`` as sent: the raw body, `records` with only ``_id``."""
        _check_limit(limit)
        _check_offset(offset)
        return self._page_fetcher(_OBJECTIVES, {"sort": sort} if sort else {}, "ids")(
            offset, limit
        )

    def objective_exists(self, id: ObjectiveId) -> bool:
        """Whether ``GET /objectives/{id}`` finds the objective (False on 404)."""
        try:
            self._sender.send(self._one("GET", id, idempotent=True))
        except NotFoundError:
            return False
        return True

    def iter_objectives(
        self,
        *,
        limit: int = MAX_PAGE_SIZE,
        sort: str | None = "_id",
        select: Select = None,
        company_id: CompanyFilter = None,
        concurrency: int | None = None,
    ) -> Iterator[Objective]:
        """Every objective, as `Objective` models; paging as in `iter_pages`."""
        pages = self.iter_pages(
            limit=limit, sort=sort, select=select, company_id=company_id, concurrency=concurrency
        )
        return (
            _objective(record, f"GET /objectives offset={page.offset} limit={page.limit}")
            for page in pages
            for record in page.records
        )

    def list_objective_ids(
        self,
        *,
        company_id: CompanyFilter = None,
        limit: int = MAX_PAGE_SIZE,
        concurrency: int | None = None,
    ) -> list[str]:
        """Every ``_id`` (``select=_id`` paging; offset paging, see `iter_pages`)."""
        pages = self.iter_pages(
            limit=limit, sort="_id", select="_id", company_id=company_id, concurrency=concurrency
        )
        return [str(record["_id"]) for page in pages for record in page.records]

    def get_objective(self, id: ObjectiveId) -> Objective:
        """One objective by ``_id`` or `ObjectiveRef`."""
        request = self._one("GET", id, idempotent=True)
        return _objective(self._sender.send(request).data, request.label)

    def get_objective_record(self, id: ObjectiveId) -> dict[str, Any]:
        """One objective exactly as Planhat sent it: a JSON object, fields not checked."""
        reply = self._sender.send(self._one("GET", id, idempotent=True))
        record: dict[str, Any] = reply.data
        return record

    # -- writing --------------------------------------------------------------

    def create_objective(self, obj: ObjectiveIn | Mapping[str, Any]) -> Objective:
        """Create one objective; `name` and `companyId` are checked before sending.

        Not retried once the request may have reached Planhat (see the class doc).
        """
        payload = _validated(obj).to_payload()
        request = Request(
            "POST",
            "/objectives",
            label="POST /objectives",
            expect="object",
            idempotent=False,
            content=_json(payload),
        )
        return _objective(self._sender.send(request).data, request.label)

    def update_objective(self, id: ObjectiveId, fields: Mapping[str, Any]) -> Objective:
        """Change the given fields (API names, e.g. ``{"health": 4}``) of one objective."""
        if not isinstance(fields, Mapping) or not fields:
            raise InvalidObjectiveError("update_objective needs a non-empty mapping of fields")
        request = self._one("PUT", id, idempotent=True, content=_json(dict(fields)))
        return _objective(self._sender.send(request).data, request.label)

    def delete_objective(self, id: ObjectiveId) -> DeleteResult:
        """Delete one objective by ``_id`` or `ObjectiveRef`."""
        reply = self._sender.send(self._one("DELETE", id, idempotent=True))
        return DeleteResult.model_validate(reply.data)

    def bulk_upsert(
        self,
        objects: Iterable[BulkItem],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        on_batch: Callable[[BulkUpsertResult], None] | None = None,
    ) -> BulkUpsertResult:
        """Upsert any number of objectives in batches of at most `batch_size` (≤ 5,000).

        Batches are sent one after another, as Planhat asks. Items are matched by
        ``_id``, then ``sourceId``, then ``externalId``; items without any of them
        are created every time they are sent. The merged result is `partial` when
        any batch answered 206 or any item failed. `on_batch` gets each batch's
        result as it arrives (its `requests[0].offset` locates it in the input).

        A batch that fails outright raises; the batches before it were applied.
        """
        return self._bulk_upsert(_OBJECTIVES, objects, batch_size=batch_size, on_batch=on_batch)

    def _bulk_upsert(
        self,
        path: str,
        objects: Iterable[BulkItem],
        *,
        batch_size: int,
        on_batch: Callable[[BulkUpsertResult], None] | None,
    ) -> BulkUpsertResult:
        result = BulkUpsertResult()
        try:
            for batch in self._iter_bulk(path, objects, batch_size):
                if on_batch is not None:
                    on_batch(batch)
                result = result.merge(batch)
        except Exception as exc:
            if result.requests:
                exc.add_note(
                    f"{len(result.requests)} batch(es) with {result.item_count} items were "
                    "applied before this failure"
                )
            raise
        return result

    def iter_bulk_upsert(
        self, objects: Iterable[BulkItem], *, batch_size: int = MAX_BULK_BATCH
    ) -> Iterator[BulkUpsertResult]:
        """Like `bulk_upsert`, yielding each batch's result as it is sent."""
        return self._iter_bulk(_OBJECTIVES, objects, batch_size)

    def _iter_bulk(
        self, path: str, objects: Iterable[BulkItem], batch_size: int
    ) -> Iterator[BulkUpsertResult]:
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, int)
            or not (1 <= batch_size <= MAX_BULK_BATCH)
        ):
            raise ConfigError(
                f"batch_size must be an integer from 1 to {MAX_BULK_BATCH} (Planhat rejects "
                f"larger bulk requests), got {batch_size!r}"
            )
        return self._bulk_batches(path, iter(objects), batch_size)

    def _bulk_batches(
        self, path: str, objects: Iterator[BulkItem], batch_size: int
    ) -> Iterator[BulkUpsertResult]:
        offset = 0
        for index in itertools.count():
            chunk = list(itertools.islice(objects, batch_size))
            if not chunk:
                return
            items = [_bulk_item(obj, offset + i) for i, obj in enumerate(chunk)]
            yield self._send_batch(path, items, index=index, offset=offset)
            offset += len(items)

    def _send_batch(
        self, path: str, items: list[dict[str, Any]], *, index: int, offset: int
    ) -> BulkUpsertResult:
        label = f"PUT {path} batch={index} items={len(items)} first_item={offset}"
        request = Request(
            "PUT",
            path,
            label=label,
            expect="object",
            idempotent=all(has_keyable(item) for item in items),
            content=_json(items),
        )
        try:
            reply = self._sender.send(request)
            status, body, attempts = reply.status, reply.data, reply.attempts
        except AuthError as exc:
            # A 403 can be a per-item permission result rather than a bad token.
            body = _permission_result(exc._body) if exc.status == 403 else None
            if body is None:
                raise
            status, attempts = exc.status, exc.attempts
        outcome = BatchOutcome(
            index=index,
            offset=offset,
            item_count=len(items),
            status=status,
            partial=status != 200,
            attempts=attempts,
        )
        try:
            return batch_result(body, items=items, outcome=outcome)
        except PydanticValidationError as exc:
            raise BadResponseError(
                "Planhat's bulk result does not have the documented shape; the batch was "
                f"sent and may have been applied ({exc.error_count()} problems, first: "
                f"{exc.errors()[0]['msg']})",
                request=label,
                retryable=False,
            ) from None

    # -- requests -------------------------------------------------------------

    def _list_queries(
        self, company_id: CompanyFilter, *, sort: str | None, select: Select
    ) -> list[dict[str, str]]:
        base: dict[str, str] = {}
        if sort:
            base["sort"] = sort
        if select:
            base["select"] = select if isinstance(select, str) else ",".join(select)
        ids = query.company_ids(company_id)
        if ids is None:
            return [base]
        chunks = query.company_chunks(ids, base, self._max_query_length)
        return [{**base, "companyId": ",".join(chunk)} for chunk in chunks]

    def _get_list(
        self,
        path: str,
        params: dict[str, str],
        *,
        offset: int,
        limit: int | None,
        parse: PageParse = "records",
    ) -> Request:
        label = f"GET {path} offset={offset}"
        if limit is not None:
            label += f" limit={limit}"
        if "companyId" in params:
            label += f" companyId=<{params['companyId'].count(',') + 1} ids>"
        expect: Expect = "list_ids" if parse == "ids" else "list"
        return Request("GET", path, label=label, expect=expect, idempotent=True, params=params)

    def _page_fetcher(
        self, path: str, params: dict[str, str], parse: PageParse = "records"
    ) -> Callable[[int, int], ObjectivePage]:
        def fetch(offset: int, limit: int) -> ObjectivePage:
            page_params = {**params, "offset": str(offset), "limit": str(limit)}
            reply: Reply = self._sender.send(
                self._get_list(path, page_params, offset=offset, limit=limit, parse=parse)
            )
            return ObjectivePage(
                offset=offset,
                limit=limit,
                body=reply.body,
                records=reply.data,
                request_number=reply.request_number,
                attempts=reply.attempts,
            )

        return fetch

    def _one(
        self,
        method: str,
        id: ObjectiveId | CompanyRef,
        *,
        idempotent: bool,
        content: bytes | None = None,
        model: str = _OBJECTIVES,
    ) -> Request:
        ref = id.value if isinstance(id, ObjectiveRef | CompanyRef) else id
        if not isinstance(ref, str) or not ref.strip():
            what = "objective" if model == _OBJECTIVES else "company"
            raise InvalidObjectiveError(
                f"A {what} id must be a non-empty _id string or a reference "
                f"(ObjectiveRef/CompanyRef), got {id!r}"
            )
        path = f"{model}/{quote(ref, safe='')}"
        return Request(
            method,
            path,
            label=f"{method} {path}",
            expect="object_or_empty" if method == "DELETE" else "object",
            idempotent=idempotent,
            content=content,
        )


def _check_limit(limit: int, largest: int = MAX_PAGE_SIZE) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= largest:
        raise ConfigError(
            f"limit must be an integer from 1 to {largest} (Planhat's largest page), "
            f"got {limit!r}"
        )
    return limit


def _check_offset(offset: int) -> int:
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ConfigError(f"offset must be a non-negative integer, got {offset!r}")
    return offset


def _check_timeout(timeout: float | httpx.Timeout) -> None:
    if isinstance(timeout, httpx.Timeout):
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")


def _check_rate(per_minute: int) -> int:
    if isinstance(per_minute, bool) or not isinstance(per_minute, int) or per_minute < 1:
        raise ConfigError(
            "rate_limit_per_minute must be a positive integer or None (no limit), "
            f"got {per_minute!r}"
        )
    return per_minute


def _check_concurrency(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
        raise ConfigError(
            f"{name} must be an integer from 1 to {MAX_CONCURRENCY} (Planhat allows bursts "
            f"of {MAX_CONCURRENCY} parallel requests), got {value!r}"
        )
    return value


def _objective(data: Any, label: str) -> Objective:
    try:
        return Objective.model_validate(data)
    except PydanticValidationError as exc:
        record = data.get("_id") if isinstance(data, dict) else None
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise BadResponseError(
            f"Objective {record!r} from Planhat does not fit the Objective model ({where}: "
            f"{problem['msg']}); iter_pages gives the raw records",
            request=label,
            retryable=False,
        ) from None


def _company(data: Any, label: str) -> Company:
    try:
        return Company.model_validate(data)
    except PydanticValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise BadResponseError(
            f"A company from Planhat does not fit the Company model ({where}: {problem['msg']})",
            request=label,
            retryable=False,
        ) from None


def _validated(obj: ObjectiveIn | Mapping[str, Any]) -> ObjectiveIn:
    if isinstance(obj, ObjectiveIn):
        return obj
    try:
        return ObjectiveIn.model_validate(obj)
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'objective'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidObjectiveError(f"Objective not sent: {problems}") from None


def _bulk_item(obj: BulkItem, position: int) -> dict[str, Any]:
    if isinstance(obj, ObjectiveIn):
        return obj.to_payload()
    if isinstance(obj, Mapping):
        return dict(obj)
    raise InvalidObjectiveError(
        f"Bulk item {position} is a {type(obj).__name__}; pass ObjectiveIn or a mapping"
    )


def _json(payload: Any) -> bytes:
    try:
        return to_json(payload)
    except PydanticSerializationError as exc:
        raise InvalidObjectiveError(f"Objective data is not JSON-serializable: {exc}") from None


def _permission_result(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    if isinstance(parsed, dict) and isinstance(parsed.get("permissionErrors"), list):
        return parsed
    return None
