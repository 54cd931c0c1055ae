"""Schemathesis against the backend's own OpenAPI schema: cases nobody here wrote.

Every operation gets generated requests, valid and invalid, signed in by a session and
by an API key, against a real backend on SQLite. A request fails the test when it
answers 5xx, when a documented answer does not match its schema, or when it reaches the
other user's data: a request naming the other user's ids must never succeed, no answer
may carry the other user's ids or names unless the request itself did, and the other
user's key, session, job, agent and enrollment must be as they were afterwards.

Bounded for CI (10 examples per operation and credential, a minute or two in all);
``TRAINING_BACKEND_FUZZ_EXAMPLES=500`` runs it longer (see docs/security.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.core.result import Ok

from tests.fuzz.site import FUZZER_AGENT, OTHER_HOST, FuzzSite, fuzz_site
from training_backend.app import create_app
from training_backend.settings import BackendSettings

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("TRAINING_BACKEND_FUZZ_EXAMPLES", "10"))
CHECKS = [not_a_server_error, response_schema_conformance]


def _schema() -> dict[str, Any]:
    # The schema the served backend hands out, read here without a server so that
    # pytest can name one test per operation.
    settings = BackendSettings(database_url="sqlite://", api_docs=True)
    return create_app(settings).openapi()


def _operations() -> dict[str, APIOperation[Any, Any, Any, Any]]:
    found = {}
    for result in schemathesis.openapi.from_dict(_schema()).get_all_operations():
        assert isinstance(result, Ok), f"the schema has an invalid operation: {result}"
        found[result.ok().label] = result.ok()
    return found


OPERATIONS = _operations()
AnyCase = Case[APIOperation[Any, Any, Any, Any]]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzSite]:
    with fuzz_site(tmp_path_factory.mktemp("fuzz")) as served:
        yield served


def _markers(site: FuzzSite) -> set[str]:
    """What only the other user's data contains."""
    other = site.other
    return {*other.ids.values(), other.name, other.key[:12], OTHER_HOST}


def _foreign(case: AnyCase, site: FuzzSite) -> bool:
    """Point the case's path parameters at the other user's things, where it has any."""
    ids = site.other.ids
    names = [name for name in case.path_parameters or {} if name in ids]
    for name in names:
        assert case.path_parameters is not None
        case.path_parameters[name] = ids[name]
    return bool(names)


def _tame(case: AnyCase) -> None:
    # A held long poll would spend the whole budget waiting: ask for an immediate answer.
    if case.query and isinstance(case.query.get("wait_seconds"), int | float):
        case.query["wait_seconds"] = 0


def _leaked(site: FuzzSite, case: AnyCase, response: Any) -> set[str]:
    sent = f"{case.formatted_path} {case.query} {case.body!r}"
    return {mark for mark in _markers(site) if mark in response.text and mark not in sent}


def _other_user_untouched(site: FuzzSite) -> None:
    other = site.other
    me = httpx.get(f"{site.url}/api/auth/me", headers=other.headers("session"))
    assert me.status_code == 200, "the other user's session was ended"
    job = httpx.get(
        f"{site.url}/api/training/local/{other.ids['job_id']}/status",
        headers=other.headers("key"),
    )
    assert job.status_code == 200, "the other user's key stopped working"
    assert job.json()["status"] == "pending", "the other user's job was touched"
    agents = httpx.get(f"{site.url}/api/training/agents", headers=other.headers("session"))
    assert [a["revoked_at"] for a in agents.json()["agents"]] == [None]
    enrollments = httpx.get(f"{site.url}/api/workers/enrollments", headers=other.headers("session"))
    assert [e["status"] for e in enrollments.json()["enrollments"]] == ["pending"]


@pytest.mark.parametrize("kind", ["session", "key"])
@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_generated_requests(site: FuzzSite, label: str, kind: str) -> None:
    operation = OPERATIONS[label]
    if not site.still_signed_in(site.fuzzer):  # a fuzzed logout or revocation ended them
        site.sign_in(site.fuzzer)
    headers = site.fuzzer.headers(kind) | {"X-Agent-ID": FUZZER_AGENT}
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=os.environ.get("CI") == "true",
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases, cross_owner=st.booleans())
    def check(case: AnyCase, cross_owner: bool) -> None:
        _tame(case)
        foreign = cross_owner and _foreign(case, site)
        response = case.call(base_url=site.url, headers=headers, timeout=30)
        case.validate_response(response, checks=CHECKS)
        if foreign:
            assert not 200 <= response.status_code < 300, (
                f"{case.method} {case.formatted_path} reached the other user's data: "
                f"{response.status_code} {response.text[:300]}"
            )
        leaked = _leaked(site, case, response)
        assert not leaked, f"{case.method} {case.formatted_path} showed {leaked}"

    check()
    _other_user_untouched(site)


def test_every_json_route_documents_its_body() -> None:
    # Without a documented body the fuzzer would only ever send empty requests there.
    with_body = {label for label, op in OPERATIONS.items() if "requestBody" in op.definition.raw}
    expected = {
        "PATCH /api/training/local/{job_id}/status",
        "PUT /api/training/local/{job_id}/metrics",
        "POST /api/training/local/metrics",
        "POST /api/training/local/{job_id}/logs",
        "POST /api/training/local/{job_id}/heartbeat",
        "POST /api/training/jobs",
        "POST /api/training/local/{job_id}/control",
        "POST /api/auth/login",
        "POST /api/user/api-keys",
        "POST /api/training/agent/enroll",
    }
    assert with_body == expected
