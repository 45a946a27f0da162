"""Single-objective operations over HTTP: create, get, update, delete, references, errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from objectives_pipeline.planhat import (
    AuthError,
    BadRequestError,
    CompanyRef,
    InvalidObjectiveError,
    NotFoundError,
    Objective,
    ObjectiveIn,
    ObjectiveRef,
    PlanhatClient,
    RetryPolicy,
)
from objectives_pipeline.sandbox import Faults, SandboxServer

FAST = RetryPolicy(initial_backoff=0.001, max_backoff=0.01, jitter=0.001)


@pytest.fixture(scope="module")
def server(sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return sandbox(objectives=200, companies=10, seed=11)


@pytest.fixture
def api(server: SandboxServer) -> Iterator[PlanhatClient]:
    with PlanhatClient(server.base_url, server.token, retry=FAST) as client:
        yield client
    server.faults = Faults()


def test_create_get_update_delete_round_trip(server: SandboxServer, api: PlanhatClient) -> None:
    company = server.store.companies()[2]
    created = api.create_objective(
        ObjectiveIn(
            name="Adopt reporting ✓",
            company_id=CompanyRef.external(company["externalId"]),
            health=3.5,
            external_id=98765,
            source_id="crm 1#a?b",  # needs URL-encoding as a path id
            custom={"Main Product": ["SSO"], "NRR30": 0, "Kary FF": None, "t": "undefined"},
        )
    )
    assert created.company_id == company["_id"]
    assert created.company_name == company["name"]
    assert created.external_id == "98765" and created.source_id == "crm 1#a?b"
    assert created.custom == {
        "Main Product": ["SSO"],
        "NRR30": 0,
        "Kary FF": None,
        "t": "undefined",
    }
    assert server.store.get(created.id) is not None

    by_id = api.get_objective(created.id)
    by_ext = api.get_objective(ObjectiveRef.external(98765))
    by_src = api.get_objective(ObjectiveRef.source("crm 1#a?b"))
    assert by_id == by_ext == by_src
    assert by_id.version == 0 and by_id.health == 3.5

    updated = api.update_objective(ObjectiveRef.source("crm 1#a?b"), {"health": 4.25})
    assert updated.id == created.id and updated.health == 4.25
    assert api.get_objective(created.id).health == 4.25

    deleted = api.delete_objective(ObjectiveRef.id(created.id))
    assert deleted.deleted_count == 1 and deleted.ok == 1
    with pytest.raises(NotFoundError) as info:
        api.get_objective(created.id)
    assert info.value.status == 404
    assert f"GET /objectives/{created.id}" in str(info.value)
    assert server.store.get(created.id) is None


def test_create_from_a_mapping_with_a_srcid_company(
    server: SandboxServer, api: PlanhatClient
) -> None:
    company = server.store.companies()[4]
    created = api.create_objective(
        {
            "name": "Gold objective",
            "companyId": f"srcid-{company['sourceId']}",
            "health": 5,
            "extraField": {"kept": True},
        }
    )
    assert created.company_id == company["_id"] and created.health == 5.0
    assert created.model_extra == {"extraField": {"kept": True}}
    assert created.model_dump()["companyId"] == company["_id"]


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"companyId": "0" * 24}, "name"),
        ({"name": "   ", "companyId": "0" * 24}, "name"),
        ({"name": "x"}, "companyId"),
        ({"name": "x", "companyId": "acme"}, "companyId"),
        ({"name": "x", "companyId": "extid-"}, "companyId"),
        ({"name": "x", "companyId": "0" * 24, "health": "high"}, "health"),
    ],
)
def test_create_checks_name_and_company_before_sending(
    server: SandboxServer, api: PlanhatClient, payload: dict[str, object], problem: str
) -> None:
    start = len(server.request_log)
    with pytest.raises(InvalidObjectiveError, match=problem) as info:
        api.create_objective(payload)
    assert isinstance(info.value, ValueError)
    assert len(server.request_log) == start


def test_server_validation_message_is_surfaced_from_json_and_plain_text(
    server: SandboxServer, api: PlanhatClient
) -> None:
    some_id = server.store.ids()[0]
    with pytest.raises(BadRequestError) as json_error:
        api.create_objective({"name": "x", "companyId": "extid-no-such-company"})
    assert json_error.value.status == 400
    assert json_error.value.server_message == "Company not found: extid-no-such-company"
    assert "POST /objectives" in str(json_error.value)

    with pytest.raises(BadRequestError) as text_error:
        api.update_objective(some_id, {"name": ""})
    assert text_error.value.server_message == "name is required and must be a non-empty string"
    assert text_error.value.attempts == 1


def test_unknown_ids_are_not_found_errors(api: PlanhatClient) -> None:
    for call in (
        lambda: api.get_objective(ObjectiveRef.external("nope")),
        lambda: api.update_objective(ObjectiveRef.source("nope"), {"health": 1}),
        lambda: api.delete_objective("f" * 24),
    ):
        with pytest.raises(NotFoundError, match="Check the id"):
            call()


def test_wrong_token_is_an_auth_error_that_is_not_retried(server: SandboxServer) -> None:
    start = len(server.request_log)
    with (
        PlanhatClient(server.base_url, "not-the-token", retry=FAST) as client,
        pytest.raises(AuthError) as info,
    ):
        client.list_objectives(limit=1)
    assert info.value.status == 401
    assert "PLANHAT_API_TOKEN" in str(info.value)
    assert len(server.request_log) == start + 1


def test_references_build_planhat_path_ids() -> None:
    assert str(ObjectiveRef.external(1234)) == "extid-1234"
    assert str(ObjectiveRef.source("sfc-1")) == "srcid-sfc-1"
    assert str(CompanyRef.external("acme")) == "extid-acme"
    assert ObjectiveRef.id("60fde9ad57df5b411cf39be5").value == "60fde9ad57df5b411cf39be5"
    for bad in ("", "xyz", "60fde9ad57df5b411cf39bez"):
        with pytest.raises(ValueError):
            ObjectiveRef.id(bad)
    with pytest.raises(ValueError):
        ObjectiveRef.external("  ")


def test_objective_model_keeps_unknown_fields_and_coerces_external_id() -> None:
    obj = Objective.model_validate(
        {
            "_id": "5ffcce42ad67267f66741147",
            "companyId": "56bccdf554d64d837d01be9d",
            "name": "Gold objective",
            "health": 5,
            "__v": 0,
            "externalId": 4467,
            "custom": {"Days in Phase": 0, "t123": "undefined"},
            "usage": {"a": 0},
            "brandNew": [1, 2],
        }
    )
    assert obj.external_id == "4467" and obj.health == 5.0 and obj.version == 0
    assert obj.usage == {"a": 0} and obj.model_extra == {"brandNew": [1, 2]}
    assert Objective.model_validate({"_id": "x", "health": None}).health is None
