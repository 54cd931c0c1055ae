"""Jobs that go where they ask: requirements checked at submission, matched at offer and
at claim, and a pending job that says what it waits for."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.backend.support import AGENT_ID, Caller, MakeKey
from training_backend.errors import ApiError
from training_backend.services.matching import AgentProfile, check_requirements, waiting_for

POLL = "/api/training/agent/poll"
JOBS = "/api/training/jobs"
A100 = {"labels": ["a100"], "gpus": [{"index": 0, "memory_gb": 80.0}], "max_jobs": 1}


def info(**overrides: Any) -> str:
    return json.dumps(A100 | overrides)


def informed(caller: Caller, agent_id: str = AGENT_ID, **overrides: Any) -> dict[str, str]:
    """An agent's poll headers with its ``X-Agent-Info`` (``A100`` with ``overrides``)."""
    return caller.headers(agent_id, **{"X-Agent-Info": info(**overrides)})


@pytest.mark.parametrize(
    ("requirements", "sentence"),
    [
        ([], "requirements must be an object"),
        ({"label": ["a"]}, "unknown key(s) label"),
        ({"labels": "a100"}, "labels must be a list of strings"),
        ({"labels": [1]}, "labels must be a list of strings"),
        ({"labels": [f"l{n}" for n in range(33)]}, "at most 32"),
        ({"labels": ["A100"]}, "'A100' is not a short slug"),
        ({"labels": ["has space"]}, "is not a short slug"),
        ({"min_gpus": 1.5}, "min_gpus must be a whole number"),
        ({"min_gpus": True}, "min_gpus must be a whole number"),
        ({"min_gpus": -1}, "min_gpus must be a whole number"),
        ({"min_gpu_memory_gb": "40"}, "min_gpu_memory_gb must be a number"),
        ({"agent_id": 7}, "agent_id must be an agent's id"),
    ],
)
def test_bad_requirements_are_one_sentence(requirements: Any, sentence: str) -> None:
    with pytest.raises(ApiError) as raised:
        check_requirements(requirements)
    assert (raised.value.status, raised.value.code) == (400, "INVALID_REQUIREMENTS")
    assert sentence in raised.value.message


def test_empty_requirements_ask_for_nothing() -> None:
    assert check_requirements({}) is None
    assert check_requirements({"labels": [], "min_gpus": 0}) is None
    assert check_requirements({"labels": ["a", "a"], "min_gpus": 2}) == {
        "labels": ["a"],
        "min_gpus": 2,
    }


def test_an_agent_matches_by_id_labels_free_gpus_and_free_slots() -> None:
    gpus = [{"memory_gb": 80.0}, {"memory_gb": 24.0, "busy": True}, {"memory_gb": 24.0}]
    agent = AgentProfile.of("agent_x", {"labels": ["a100", "eu"], "gpus": gpus})
    assert agent.accepts(None) and agent.accepts({"labels": ["eu", "a100"]})
    assert not agent.accepts({"labels": ["a100", "h100"]})
    assert agent.accepts({"agent_id": "agent_x"}) and not agent.accepts({"agent_id": "agent_y"})
    assert agent.accepts({"min_gpus": 2}) and not agent.accepts({"min_gpus": 3})  # one busy
    assert agent.accepts({"min_gpu_memory_gb": 40}) and not agent.accepts(
        {"min_gpus": 2, "min_gpu_memory_gb": 40}
    )
    assert agent.could_ever({"min_gpus": 3})  # once its job ends
    v1 = AgentProfile.of("agent_v", None)
    assert v1.accepts(None) and not v1.accepts({"labels": ["a100"]})
    full = AgentProfile.of("agent_f", {"max_jobs": 2, "busy_jobs": 2})
    assert not full.accepts(None) and full.could_ever(None)


def test_a_waiting_job_says_what_it_waits_for() -> None:
    a100 = AgentProfile.of("agent_x", A100 | {"busy_jobs": 1})
    assert waiting_for({"labels": ["a100"]}, []) == "an agent with label a100 (none online)"
    assert waiting_for({"labels": ["h100"]}, [a100]).endswith("(none online)")
    assert waiting_for({"labels": ["a100"]}, [a100]).endswith("(the ones online are busy)")
    assert (
        waiting_for({"agent_id": "agent_y", "min_gpus": 2, "min_gpu_memory_gb": 40}, [])
        == "agent agent_y with 2 free GPUs of at least 40 GB (none online)"
    )


async def submit(client: httpx.AsyncClient, caller: Caller, **body: Any) -> httpx.Response:
    return await client.post(JOBS, json={"config": {}} | body, headers=caller.headers(None))


async def test_a_job_goes_only_to_an_agent_that_matches(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    job = (await submit(client, caller, requirements={"labels": ["a100"]})).json()["job"]
    assert job["requirements"] == {"labels": ["a100"]}
    v1 = await client.get(POLL, headers=caller.headers("agent_v1000001"))
    other = await client.get(
        POLL, headers=caller.headers("agent_cpu00001", **{"X-Agent-Info": info(labels=["cpu"])})
    )
    busy = await client.get(
        POLL, headers=caller.headers("agent_busy0001", **{"X-Agent-Info": info(busy_jobs=1)})
    )
    match = await client.get(POLL, headers=caller.headers(**{"X-Agent-Info": info()}))
    assert [answer.json()["job"] for answer in (v1, other, busy)] == [None, None, None]
    assert match.json()["job"]["id"] == job["id"]


async def test_a_job_nobody_matches_says_why_it_waits(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    await client.get(POLL, headers=caller.headers(**{"X-Agent-Info": info(labels=["cpu"])}))
    job = (await submit(client, caller, requirements={"labels": ["a100"]})).json()["job"]
    status = await client.get(
        f"/api/training/local/{job['id']}/status", headers=caller.headers(None)
    )
    listed = await client.get(JOBS, headers=caller.headers(None))
    reason = "an agent with label a100 (none online)"
    assert status.json()["waiting_for"] == reason
    assert listed.json()["jobs"][0]["waiting_for"] == reason
    assert listed.json()["jobs"][0]["requirements"] == {"labels": ["a100"]}


async def test_an_agent_that_does_not_match_cannot_claim(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    job = (await submit(client, caller, requirements={"labels": ["a100"]})).json()["job"]
    headers = informed(caller, labels=["cpu"])
    refused = await client.post(f"/api/training/agent/claim/{job['id']}", headers=headers)
    assert (refused.status_code, refused.json()["code"]) == (409, "REQUIREMENTS_NOT_MET")
    assert "label a100" in refused.json()["error"]


async def test_agent_id_must_name_an_agent_of_the_user(
    client: httpx.AsyncClient, caller: Caller, make_key: MakeKey
) -> None:
    stranger = make_key()
    await client.get(POLL, headers=stranger.headers("agent_stranger01"))
    await client.get(POLL, headers=caller.headers())
    theirs = await submit(client, caller, requirements={"agent_id": "agent_stranger01"})
    nobodys = await submit(client, caller, requirements={"agent_id": "agent_nobody0001"})
    mine = await submit(client, caller, requirements={"agent_id": AGENT_ID})
    # The same sentence for someone else's agent and for none: nothing to learn here.
    assert theirs.status_code == nobodys.status_code == 400
    assert theirs.json() == nobodys.json()
    assert theirs.json()["code"] == "INVALID_REQUIREMENTS"
    assert mine.status_code == 201


async def test_bad_requirements_are_400_with_a_sentence(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    answer = await submit(client, caller, requirements={"labels": ["A100"], "gpus": 2})
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("Invalid requirements: unknown key(s) gpus")
