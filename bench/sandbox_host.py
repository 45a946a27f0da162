"""The sandbox every implementation of a scenario talks to, served from the parent process.

The server runs on a thread of the benchmark's own process (each implementation runs
in a child process), so its memory is never counted in an implementation's RSS. It
counts the requests each run sends (and the 429s among them), and can change its faults
(latency, rate limits, churn) between runs without regenerating the data.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from types import TracebackType

import httpx

from objectives_pipeline.sandbox import Faults, SandboxServer


class BenchSandbox:
    """A seeded sandbox on 127.0.0.1 with a random token; use as a context manager."""

    def __init__(self, *, objectives: int, companies: int, seed: int) -> None:
        self.objectives = objectives
        self.token = secrets.token_urlsafe(24)
        self.server = SandboxServer(
            objectives=objectives, companies=companies, seed=seed, token=self.token
        )

    def __enter__(self) -> BenchSandbox:
        self.server.start(timeout=120.0)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.stop()

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def set_faults(self, faults: Faults) -> None:
        """What the sandbox does from the next request on (latency, rate limits, churn)."""
        self.server.faults = faults

    def object_ids(self) -> set[str]:
        """Every objective id the sandbox holds now."""
        return set(self.server.store.ids())

    def company_external_ids(self) -> list[str]:
        return [str(c["externalId"]) for c in self.server.store.companies() if c.get("externalId")]

    def request_mark(self) -> int:
        """A position in the request log; `requests_since` counts API requests after it."""
        return len(self.server.request_log)

    def requests_since(self, mark: int) -> int:
        return sum(1 for r in self.server.request_log[mark:] if r.path.startswith("/objectives"))

    def throttled_since(self, mark: int) -> int:
        """API requests after `mark` that the sandbox answered 429."""
        return sum(
            1
            for r in self.server.request_log[mark:]
            if r.path.startswith("/objectives") and r.status == 429
        )

    def warm_up(self, page_size: int, ndjson: Path | None = None) -> int:
        """Fetch every page once (the sandbox encodes each object on first use and keeps the
        bytes), and the ``select=_id`` listing; write the records to `ndjson` when given.
        Returns the records seen."""
        return warm_up(self.base_url, self.token, self.objectives, page_size, ndjson)


def warm_up(
    base_url: str, token: str, objectives: int, page_size: int, ndjson: Path | None = None
) -> int:
    """Read every page and the ``select=_id`` listing of a sandbox once; see `BenchSandbox`."""
    records = 0
    max_pages = objectives // page_size + 10
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=120.0) as http:
        out = ndjson.open("w", encoding="utf-8") if ndjson is not None else None
        try:
            for select in (None, "_id"):
                for page in range(max_pages):
                    params: dict[str, str | int] = {
                        "limit": page_size,
                        "offset": page * page_size,
                        "sort": "_id",
                    }
                    if select:
                        params["select"] = select
                    response = http.get("/objectives", params=params)
                    response.raise_for_status()
                    if response.content.strip() == b"[]":
                        break
                    if select is None:
                        page_records = response.json()
                        records += len(page_records)
                        if out is not None:
                            out.writelines(
                                json.dumps(r, ensure_ascii=False) + "\n" for r in page_records
                            )
                else:
                    raise RuntimeError(f"the sandbox served more than {max_pages} pages")
        finally:
            if out is not None:
                out.close()
    return records
