"""The backend the fuzz tests run against: a real ``training-backend serve`` process on
SQLite with its API schema served, and two users, each with a session, a key, a job, a
dataset, an agent and an enrollment token. One user (the fuzzer) sends the requests;
the other's ids are the ones it must never reach."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.backend import BackendProcess, start_backend

#: Agent ids of the two users (distinct, so an agent route cannot match by accident).
FUZZER_AGENT = "agent_f022e4f022e4f022"
OTHER_AGENT = "agent_0b0b0b0b0b0b0b0b"
OTHER_HOST = "other-users-secret-host"


@dataclass
class Account:
    """One user of the fuzz site, what it holds, and how it signs its requests."""

    name: str
    password: str
    session: str = ""
    key: str = ""
    ids: dict[str, str] = field(default_factory=dict)
    """The ids of what the account owns, by the path parameter that names them."""

    def headers(self, kind: str) -> dict[str, str]:
        """Headers that sign a request in by ``session`` or by ``key``."""
        secret = self.session if kind == "session" else self.key
        return {"Authorization": f"Bearer {secret}"}


@dataclass
class FuzzSite:
    backend: BackendProcess
    fuzzer: Account
    other: Account

    @property
    def url(self) -> str:
        return self.backend.url

    def still_signed_in(self, account: Account) -> bool:
        """Whether ``account``'s session and key both still work."""
        me = httpx.get(f"{self.url}/api/auth/me", headers=account.headers("session"))
        jobs = httpx.get(
            f"{self.url}/api/training/jobs", params={"limit": 1}, headers=account.headers("key")
        )
        return me.status_code == 200 and jobs.status_code == 200

    def sign_in(self, account: Account) -> None:
        """A fresh session and key for ``account`` (a fuzzed request may end either)."""
        login = httpx.post(
            f"{self.url}/api/auth/login",
            json={"name": account.name, "password": account.password},
            timeout=30,
        )
        login.raise_for_status()
        account.session = login.json()["token"]
        made = httpx.post(
            f"{self.url}/api/user/api-keys",
            json={"name": "fuzz", "scopes": ["training"]},
            headers=account.headers("session"),
        )
        made.raise_for_status()
        account.key = made.json()["apiKey"]["key"]
        account.ids["key_id"] = made.json()["apiKey"]["id"]


def _create_account(backend: BackendProcess, name: str) -> Account:
    _user_id, password = backend.cli("users", "create", name).split()
    return Account(name, password)


def _furnish(site: FuzzSite, account: Account, agent_id: str, hostname: str) -> None:
    """Give ``account`` one of everything a path parameter can name."""
    site.sign_in(account)
    url, key = site.url, account.headers("key")
    agent = key | {"X-Agent-ID": agent_id, "X-Agent-Hostname": hostname}
    httpx.get(f"{url}/api/training/agent/poll", headers=agent).raise_for_status()
    account.ids["agent_id"] = agent_id
    dataset = httpx.post(f"{url}/api/training/datasets", content=b'{"text": "hi"}\n', headers=key)
    dataset.raise_for_status()
    account.ids["dataset_id"] = dataset.json()["dataset"]["id"]
    config = {"type": "command", "command": ["true"]}
    body = {"config": config, "dataset_id": account.ids["dataset_id"]}
    job = httpx.post(f"{url}/api/training/jobs", json=body, headers=key)
    job.raise_for_status()
    account.ids["job_id"] = job.json()["job"]["id"]
    enrollment = httpx.post(f"{url}/api/workers/enrollments", headers=account.headers("session"))
    enrollment.raise_for_status()
    account.ids["enrollment_id"] = enrollment.json()["enrollment"]["id"]


@contextmanager
def fuzz_site(folder: Path) -> Iterator[FuzzSite]:
    """The backend with both users furnished, stopped afterwards."""
    env = {"TRAINING_BACKEND_API_DOCS": "1", "TRAINING_BACKEND_POLL_INTERVAL_SECONDS": "1"}
    with start_backend(folder, env=env) as backend:
        site = FuzzSite(
            backend, _create_account(backend, "fuzzer"), _create_account(backend, "other-owner")
        )
        _furnish(site, site.other, OTHER_AGENT, OTHER_HOST)
        _furnish(site, site.fuzzer, FUZZER_AGENT, "fuzzer-host")
        yield site
