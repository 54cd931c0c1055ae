"""Crash consistency: the agent SIGKILLed at ten moments of a job and started again on
the same home (issue 16).

Each scenario runs one job through its own fault proxy (which can hold a request for a
few seconds, so the agent dies while it is in flight) and its own user, all side by
side against one backend. Afterwards the job is terminal once, with the reason the
design gives: ``completed`` when the agent died before it ran the trainer (during the
claim: the backend gives the same agent the job again) or after the trainer's end was
stored; otherwise ``failed`` with "agent restarted during the job". Whatever the agent
had stored arrives once, in order (what the backend holds is an unbroken prefix of the
job's lines and steps), the outbox ends empty, and no process of the job is left.
"""

from __future__ import annotations

import contextlib
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from tests.support.agent import agent_env
from tests.support.backend import BackendProcess, start_backend
from tests.support.e2e import Owner, journal, tracked_processes, wait_until
from tests.support.fault_proxy import FaultProxy, start_fault_proxy
from tests.support.job_faults import command_trainer
from training_agent.journal import AGENT_RESTARTED
from training_backend.db import create_db_engine, create_session_factory
from training_backend.services.api_keys import create_api_key
from training_backend.services.users import create_user

# The module's runs go side by side in its fixture: its time counts against one test.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

STEPS = 300
# Six seconds in all: the moments below fall inside the run.
TRAINER = command_trainer(STEPS, 0.02)
HELD_S = 4.0  # how long the proxy holds the request the agent dies during
WAIT_S = 150.0
STATUS = r"^/api/training/local/[^/]+/status$"


def held(paths: str, *, contains: str = "") -> dict[str, Any]:
    """A script that holds the first matching request ``HELD_S``, then forwards it."""
    fault = {"kind": "delay", "min_s": HELD_S, "max_s": HELD_S}
    rule = {"paths": paths, "contains": contains, "every": 1, "limit": 1}
    return {"seed": 16, "rules": [{**rule, "faults": [fault]}]}


@dataclass
class Scenario:
    """When to kill the agent, and how the job must end."""

    script: dict[str, Any]
    kill_when: Callable[[Case], bool]
    ends: str  # completed | failed | either
    restart_args: tuple[str, ...] = ("--idle-exit", "3")
    kill_again_when: Callable[[Case], bool] | None = None  # during the first restart
    restart_after_s: float = 0.0


@dataclass
class Case:
    """One scenario's user, proxy, home and what came of it."""

    owner: Owner
    proxy: FaultProxy
    home: Path
    outputs: list[str]
    job_id: str | None = None
    tracking_id: str | None = None

    def log(self) -> str:
        return (self.home.parent / "agent.out").read_text(errors="replace")

    def held_request(self) -> bool:
        return bool(self.proxy.injected())


def started_then(seconds: float) -> Callable[[Case], bool]:
    started: dict[str, float] = {}

    def check(case: Case) -> bool:
        if " started pid=" not in case.log():
            return False
        first = started.setdefault("at", time.monotonic())
        return time.monotonic() - first >= seconds

    return check


rng = random.Random(1616)
SCENARIOS = {
    # The claim is held in the proxy: the backend commits it after the agent died, and
    # the agent starts again once it did (a restart takes seconds anyway).
    "during-claim": Scenario(
        held("^/api/training/agent/claim/"),
        Case.held_request,
        "completed",
        restart_args=("--max-jobs", "1"),
        restart_after_s=HELD_S + 1.0,
    ),
    "during-first-report": Scenario(held(STATUS), Case.held_request, "failed"),
    "early": Scenario({"rules": []}, started_then(0.3), "failed"),
    "mid-job": Scenario({"rules": []}, started_then(2.5), "failed"),
    "logs-in-flight": Scenario(held(r"/logs$"), Case.held_request, "failed"),
    "metrics-in-flight": Scenario(
        held(r"^/api/training/local/metrics$"), Case.held_request, "failed"
    ),
    "before-terminal-status": Scenario(
        held(STATUS, contains="completed"), Case.held_request, "completed"
    ),
    "during-recovery": Scenario(
        held(STATUS, contains=AGENT_RESTARTED),
        started_then(1.0),
        "failed",
        kill_again_when=Case.held_request,
    ),
    "random-1": Scenario({"rules": []}, started_then(rng.uniform(0.2, 4.0)), "either"),
    "random-2": Scenario({"rules": []}, started_then(rng.uniform(0.2, 4.0)), "either"),
}


def owners(backend: BackendProcess, names: list[str]) -> dict[str, str]:
    """A user and a ``training`` key per name, written straight to the backend's database
    (a CLI call per user costs seconds)."""
    engine = create_db_engine(backend.database_url)
    keys = {}
    try:
        with create_session_factory(engine)() as db:
            for name in names:
                keys[name] = _user_with_key(db, name)
    finally:
        engine.dispose()
    return keys


def _user_with_key(db: Session, name: str) -> str:
    user = create_user(db, name=name)
    _, key = create_api_key(db, user_id=user.id, name="crash", scopes=["training"])
    db.commit()
    return key


def run_scenario(backend: BackendProcess, key: str, here: Path, scenario: Scenario) -> Case:
    owner = Owner(backend, key)
    submit(owner)
    with start_fault_proxy(here / "proxy", backend.url, scenario.script) as proxy:
        case = Case(owner, proxy, here / "agent", [])
        first = start(case, "--max-jobs", "1")
        kill_when(first, case, scenario.kill_when)
        time.sleep(scenario.restart_after_s)
        restart_args = scenario.restart_args
        if scenario.kill_again_when is not None:
            kill_when(start(case, *restart_args), case, scenario.kill_again_when)
        finish(start(case, *restart_args), case)
    return case


def submit(owner: Owner) -> None:
    config = {"type": "command", "command": [sys.executable, "-c", TRAINER]}
    answer = httpx.post(
        f"{owner.backend.url}/api/training/jobs",
        headers=owner.headers,
        json={"model_name": "crash", "config": config},
    )
    answer.raise_for_status()


def start(case: Case, *args: str) -> subprocess.Popen[bytes]:
    env = agent_env(
        case.home,
        backend_url=case.proxy.url,
        api_key=case.owner.key,
        TRAINING_AGENT_ALLOW_COMMAND_JOBS="1",
        TRAINING_AGENT_HEARTBEAT_INTERVAL_SECONDS="1",
    )
    out = case.home.parent / "agent.out"
    with out.open("wb") as sink:  # each start's output replaces the last one's
        command = [sys.executable, "-m", "training_agent", "start", *args]
        return subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)


def kill_when(agent: subprocess.Popen[bytes], case: Case, moment: Callable[[Case], bool]) -> None:
    def check() -> bool:
        if case.job_id is None and (found := _claimed(case.log())):
            case.job_id = found
        return moment(case)

    try:
        wait_until(check, f"the moment to kill the agent in {case.home.parent.name}", WAIT_S)
        if case.job_id is not None and case.tracking_id is None:
            with contextlib.suppress(OSError, ValueError, KeyError):
                case.tracking_id = journal(case.home, case.job_id).get("tracking_id")
    finally:
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        case.outputs.append(case.log())


def finish(agent: subprocess.Popen[bytes], case: Case) -> None:
    try:
        agent.wait(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        agent.kill()
        agent.wait()
    output = case.log()
    case.outputs.append(f"exit code {agent.returncode}\n{output}")
    if case.job_id is None:
        case.job_id = _claimed(output)


def _claimed(output: str) -> str | None:
    for line in output.splitlines():
        if line.endswith("model=crash") and " claimed " in line:
            return line.split("job ", 1)[1].split(" ", 1)[0]
    return None


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Case]]:
    tmp = tmp_path_factory.mktemp("crash")
    with start_backend(tmp / "backend") as backend:
        keys = owners(backend, list(SCENARIOS))
        with ThreadPoolExecutor(max_workers=len(SCENARIOS)) as pool:
            futures = {
                name: pool.submit(run_scenario, backend, keys[name], tmp / name, scenario)
                for name, scenario in SCENARIOS.items()
            }
            yield {name: future.result() for name, future in futures.items()}


def outbox_rows(home: Path) -> int:
    with sqlite3.connect(home / "state" / "outbox.sqlite3") as db:
        rows = sum(
            db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("logs", "held_logs", "metrics", "statuses")
        )
        return int(rows) + int(
            db.execute("SELECT COUNT(*) FROM jobs WHERE finished = 0").fetchone()[0]
        )


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_a_killed_agent_ends_the_job_once_and_loses_or_doubles_nothing(
    cases: dict[str, Case], name: str
) -> None:
    case, scenario = cases[name], SCENARIOS[name]
    everything = "\n----\n".join(case.outputs)
    assert case.job_id is not None, everything
    assert case.outputs[-1].startswith("exit code 0"), everything
    state = case.owner.state(case.job_id)
    lines, steps = case.owner.logs(case.job_id), case.owner.steps(case.job_id)
    assert lines == [f"line {n}" for n in range(1, len(lines) + 1)], everything
    assert steps == list(range(1, len(steps) + 1)), everything
    ends = {"completed", "failed"} if scenario.ends == "either" else {scenario.ends}
    assert state["status"] in ends, (state, everything)
    if state["status"] == "completed":
        assert len(lines) == len(steps) == STEPS, everything
    else:
        assert state["status"] == "failed" and state["error"] == AGENT_RESTARTED, state
        assert everything.count("the agent restarted during the job; reporting it failed") == 1
    assert outbox_rows(case.home) == 0
    if case.tracking_id:
        assert tracked_processes(case.tracking_id) == []
