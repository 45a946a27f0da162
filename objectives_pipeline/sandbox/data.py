"""Seeded, realistic-looking tenant data for the sandbox.

`generate_tenant` is deterministic for a seed. Nested values (``custom``,
``usage``) are drawn from small pools and may be shared between objectives:
the store never mutates a stored object in place, so sharing is safe and keeps
a million objectives affordable in memory and time.
"""

from __future__ import annotations

import gc
import random
import time
from dataclasses import dataclass, field
from typing import Any

JsonObject = dict[str, Any]

# 2021-01-01T00:00:00Z: seeded ids carry timestamps from here on.
_SEED_EPOCH = 1_609_459_200


class ObjectIdFactory:
    """Makes 24-hex ids that increase strictly, so string order equals creation order.

    Layout: 8 hex digits of seconds, then a 16 hex digit counter (fixed width,
    so lexicographic and numeric order agree).
    """

    def __init__(self, last_id: str | None = None, *, counter_start: int = 0) -> None:
        if last_id is None:
            self._seconds = 0
            self._counter = counter_start
        else:
            self._seconds = int(last_id[:8], 16)
            self._counter = int(last_id[8:], 16)

    def next(self, seconds: int | None = None) -> str:
        now = int(time.time()) if seconds is None else seconds
        self._seconds = max(self._seconds, now)
        self._counter += 1
        return f"{self._seconds:08x}{self._counter:016x}"


@dataclass
class Tenant:
    """A generated tenant: companies and their objectives, objectives in _id order.

    `metrics` holds custom metric values (``companyId, dimensionId, day, value``).
    """

    companies: list[JsonObject] = field(default_factory=list)
    objectives: list[JsonObject] = field(default_factory=list)
    metrics: list[JsonObject] = field(default_factory=list)


# fmt: off
_COMPANY_STEMS = [
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Tenet", "Stark", "Wayne", "Wonka",
    "Cyberdyne", "Soylent", "Vandelay", "Pied Piper", "Dunder Mifflin", "Massive Dynamic",
    "Müller", "Société Générale Démo", "Ångström", "Łódź Logistics", "Café Olé", "Zürich Re Test",
    "株式会社サンプル", "Ñandú Foods", "Øresund Shipping", "Παράδειγμα", "Пример Групп",
    "São Paulo Têxtil", "İzmir Çelik", "Đà Nẵng Tech", "Krämer & Söhne",
]
_COMPANY_SUFFIXES = ["Inc", "GmbH", "AB", "Ltd", "SA", "BV", "KK", "Corp", "AS", "LLC"]
_PHASES = ["Onboarding", "Adoption", "Renewal", "Expansion", "At risk", None]

_OBJECTIVE_NAMES = [
    "Gold objective", "Expand usage", "Onboarding complete", "Reduce churn risk",
    "Executive sponsor engaged", "Adopt reporting module", "Renewal secured",
    "Increase NPS", "Launch integration", "Train power users", "ZPA Product", "Trello.io",
    "Ménage rollout", "数据迁移", "Проект Альфа", "🚀 Launch v2", "Qualität sichern",
    "Expansão regional", "Réduire les tickets", "Ωmega pilot", "Go-live in Q3",
    "Upsell analytics seats", "Health check workshop", "QBR scheduled",
]
_PRODUCTS = ["Recipe Database", "Analytics", "Mobile App", "API Access", "Premium Support", "SSO"]
_COMMENTS = ["", "On track", "Needs follow-up", "Blocked by IT", "Très bien 👍", "要确认"]
_OWNERS = ["Ana", "Bjørn", "Chloé", "Dmitri", "Eun-ji", "Femi", "Gustavo", "Hana"]
_HEALTH_FRACTIONS = [0.5, 1.5, 2.5, 3.5, 4.5, 3.25, 2.75, 4.2]
# fmt: on


def _usage_ids(rng: random.Random, n: int) -> list[str]:
    return [f"{rng.getrandbits(96):024x}" for _ in range(n)]


def _custom_pool(rng: random.Random, size: int) -> list[JsonObject]:
    pool: list[JsonObject] = []
    for i in range(size):
        custom: JsonObject = {}
        if rng.random() < 0.8:
            custom["Comments"] = rng.choice(_COMMENTS)
        if rng.random() < 0.7:
            custom["Main Product"] = rng.sample(_PRODUCTS, rng.randint(0, 3))
        if rng.random() < 0.7:
            custom["Days in Phase"] = rng.randint(0, 400)
        if rng.random() < 0.5:
            custom["NRR30"] = round(rng.uniform(0.6, 1.6), 3)
        if rng.random() < 0.3:
            custom["t123"] = "undefined"
        if rng.random() < 0.6:
            custom["Logins"] = rng.randint(0, 5000)
        if rng.random() < 0.5:
            custom["Overall Outlet Health"] = rng.choice([1, 2, 3, 4, 5, 3.5, None])
        if rng.random() < 0.4:
            custom["Kary FF"] = None
        if rng.random() < 0.5:
            custom["Active"] = rng.random() < 0.7
        if rng.random() < 0.3:
            custom["Owner"] = {
                "name": rng.choice(_OWNERS),
                "email": f"owner{i}@example.com",
                "tags": rng.sample(["vip", "emea", "apac", "smb"], rng.randint(0, 2)),
            }
        pool.append(custom)
    return pool


def _usage_pool(rng: random.Random, size: int, metric_ids: list[str]) -> list[JsonObject]:
    pool: list[JsonObject] = []
    for _ in range(size):
        chosen = rng.sample(metric_ids, rng.randint(0, 3))
        pool.append({mid: rng.choice([0, 0, 1, 7, 42, 3.5, 1200]) for mid in chosen})
    return pool


def _health(bits: int) -> float | int | None:
    roll = bits % 100
    if roll < 7:
        return None
    if roll < 17:
        return _HEALTH_FRACTIONS[(bits >> 7) % len(_HEALTH_FRACTIONS)]
    return 1 + (bits >> 7) % 5


def generate_companies(count: int, rng: random.Random, ids: ObjectIdFactory) -> list[JsonObject]:
    """Companies with (partly unicode) names and a sourceId; all but one in 50 have an
    externalId (the 38th, 88th, ... have none, like companies created by hand in Planhat)."""
    companies: list[JsonObject] = []
    for i in range(count):
        stem = _COMPANY_STEMS[i % len(_COMPANY_STEMS)]
        suffix = rng.choice(_COMPANY_SUFFIXES)
        company: JsonObject = {
            "_id": ids.next(_SEED_EPOCH + i),
            "name": f"{stem} {suffix}" if i < len(_COMPANY_STEMS) else f"{stem} {suffix} {i}",
            "externalId": f"C{1000 + i}",
            "sourceId": f"sfc-acc-{rng.getrandbits(32):08x}",
            "phase": rng.choice(_PHASES),
        }
        if i % 50 == 37:
            del company["externalId"]
        companies.append(company)
    return companies


def generate_tenant(objectives: int, companies: int, seed: int) -> Tenant:
    """Generate `companies` companies and `objectives` objectives, deterministic for `seed`."""
    if companies < 1 and objectives > 0:
        raise ValueError("objectives need at least one company")
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of fresh dicts: cyclic GC passes would double the run time
    try:
        return _generate(objectives, companies, seed)
    finally:
        if gc_was_enabled:
            gc.enable()


def _generate(objectives: int, companies: int, seed: int) -> Tenant:
    rng = random.Random(seed)
    company_ids = ObjectIdFactory(counter_start=rng.getrandbits(32))
    company_list = generate_companies(companies, rng, company_ids)

    # Skewed company sizes: a few big customers, a long tail, some with none.
    weights = [rng.paretovariate(1.2) if rng.random() > 0.05 else 0.0 for _ in company_list]
    if company_list and not any(weights):
        weights[0] = 1.0
    picks = (
        rng.choices(range(len(company_list)), weights=weights, k=objectives) if objectives else []
    )

    customs = _custom_pool(rng, 512)
    usages = _usage_pool(rng, 256, _usage_ids(rng, 12))
    counter = rng.getrandbits(40)
    first_second = _SEED_EPOCH + 86_400 * 30
    names = _OBJECTIVE_NAMES
    getrandbits = rng.getrandbits
    seconds_per_objective = max(1, 60_000_000 // max(objectives, 1))

    out: list[JsonObject] = []
    append = out.append
    for i, company_index in enumerate(picks):
        bits = getrandbits(64)
        company = company_list[company_index]
        obj: JsonObject = {
            # Same layout as ObjectIdFactory, inlined: this loop runs a million times.
            "_id": f"{first_second + i * seconds_per_objective:08x}{counter + i:016x}",
            "companyId": company["_id"],
            "companyName": company["name"],
            "name": names[bits % len(names)],
        }
        bits >>= 5
        if bits % 50:  # 2% have no health field at all
            obj["health"] = _health(bits >> 6)
        bits >>= 20
        if bits % 100 >= 15:
            obj["externalId"] = str(100_000 + i)
        bits >>= 7
        if bits % 100 >= 15:
            obj["sourceId"] = f"sfc-obj-{i:07d}"
        bits >>= 7
        obj["custom"] = customs[bits % len(customs)]
        bits >>= 9
        if bits % 4:
            obj["usage"] = usages[bits % len(usages)]
        bits >>= 8
        if bits % 10 == 0:
            obj["description"] = f"Objective {i} for {company['name']}"
        bits >>= 4
        obj["__v"] = 0 if bits % 5 else bits % 4
        append(obj)
    return Tenant(companies=company_list, objectives=out)
