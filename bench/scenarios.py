"""What the benchmark measures: scenarios, and the implementations compared in each."""

from __future__ import annotations

from dataclasses import dataclass, field

PAGE_SIZE = 2000
SEED = 7


@dataclass(frozen=True)
class Variant:
    """One implementation as run in a scenario (one row of the table)."""

    label: str
    implementation: str
    concurrency: int | None = None
    """Pages in flight; None: the product's default (``ExtractOptions().concurrency``)."""
    loader_file_format: str = ""


OURS = Variant("ours", "ours")
SEQUENTIAL = Variant("sequential pager", "sequential")
DLT = Variant("dlt rest_api", "dlt")
DLT_JSONL = Variant("dlt rest_api, jsonl loader", "dlt", loader_file_format="jsonl")
FLOOR_A = Variant("floor (a) raw pages", "floor_a")
FLOOR_B = Variant("floor (b) local NDJSON", "floor_b")


@dataclass(frozen=True)
class ExtractScenario:
    name: str
    objectives: int
    latency_ms: float
    variants: tuple[Variant, ...]
    purpose: str
    skipped: tuple[tuple[str, str], ...] = field(default=())
    """(implementation label, why it is not run)."""

    @property
    def companies(self) -> int:
        return max(self.objectives // 50, 20)

    @property
    def title(self) -> str:
        return f"{self.objectives:,} objectives, {self.latency_ms:g} ms latency"


@dataclass(frozen=True)
class PushScenario:
    name: str
    rows: int
    purpose: str
    companies: int = 200

    @property
    def title(self) -> str:
        return f"push {self.rows:,} rows"


@dataclass(frozen=True)
class ModelsScenario:
    name: str
    objectives: int
    snapshots: int
    purpose: str

    @property
    def companies(self) -> int:
        return max(self.objectives // 50, 20)

    @property
    def title(self) -> str:
        return f"SQL models, {self.objectives:,} objectives x {self.snapshots} snapshots"


Scenario = ExtractScenario | PushScenario | ModelsScenario

DLT_1M_SKIPPED = (
    "dlt rest_api",
    "not run: with its default DuckDB loader (insert_values) memory grows with the load "
    "package (see its peak RSS at 100,000 objectives); ten times that would not fit this machine",
)


def scenarios(*, quick: bool) -> list[Scenario]:
    """Every scenario, in the order they run (those sharing a sandbox size are adjacent).

    `quick` keeps the same scenarios and implementations with tiny sizes, for the smoke test.
    """
    small, large = (2_000, 6_000) if quick else (100_000, 1_000_000)
    sweep = (1, 4) if quick else (1, 2, 4, 8, 16)
    return [
        ExtractScenario(
            "extract_0ms",
            small,
            0.0,
            (OURS, SEQUENTIAL, DLT, DLT_JSONL, FLOOR_A, FLOOR_B),
            "throughput when the server answers at once",
        ),
        ExtractScenario(
            "extract_50ms",
            small,
            50.0,
            (OURS, SEQUENTIAL, DLT, DLT_JSONL, FLOOR_A),
            "round trips: 50 ms added to every request",
        ),
        ExtractScenario(
            "concurrency_50ms",
            small,
            50.0,
            tuple(Variant(f"ours concurrency={c}", "ours", concurrency=c) for c in sweep),
            "ours with more or fewer pages in flight, to choose the default",
        ),
        ExtractScenario(
            "extract_large",
            large,
            0.0,
            (OURS, SEQUENTIAL, DLT_JSONL, FLOOR_A, FLOOR_B),
            "memory: peak RSS must not grow with the number of objectives",
            skipped=() if quick else (DLT_1M_SKIPPED,),
        ),
        PushScenario("push", small, "reverse ETL: bulk upsert, then an unchanged re-push"),
        ModelsScenario(
            "models",
            2_000 if quick else 1_000_000,
            3 if quick else 30,
            "every model in dbt_like_sql/ over many snapshots",
        ),
    ]


def scenario_names() -> list[str]:
    return [s.name for s in scenarios(quick=True)]
