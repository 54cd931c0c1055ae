"""Nothing lost under faults: the real agent and the real backend with a fault-injecting
proxy between them (``tests/support/fault_proxy.py``), one class of fault at a time and
then all of them mixed (issue 16).

A job writes 1,000 metric points and 2,000 log lines while every third request to the
job-token routes (reports and heartbeats) meets the fault: far more often than a real
network, so that each class is met several times in a job of a few seconds. Whatever
the backend applied, once or twice, it stores once (log offsets, per-step metrics), so
every point and line arrives exactly once and in order, and the job ends completed.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import job_faults
from tests.support.backend import start_backend
from tests.support.e2e import Owner, make_user_and_key
from tests.support.fault_proxy import start_fault_proxy

# The module's runs go side by side in its fixture: its time counts against one test.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

POINTS = 1000
LINES = 2 * POINTS
WAIT_S = 240.0  # every agent of the module runs at once on a shared machine
TRAINER = textwrap.dedent(
    f"""
    import time
    from training_agent import report
    report.progress(total_steps={POINTS}, total_epochs=1)
    for step in range(1, {POINTS} + 1):
        print(f"line {{2 * step - 1}}", flush=True)
        print(f"line {{2 * step}}", flush=True)
        report.metric(step, step / {POINTS}, train_loss=1.0 / step)
        if step % 100 == 0:
            time.sleep(0.15)  # a second and a half in all: several upload passes
    """
)
REPORTS = "^/api/training/local/"
BATCHES = r"^/api/training/local/(metrics|[^/]+/logs)$"
SERVER_ERRORS = [
    {"kind": "status", "status": 500},
    {"kind": "status", "status": 502},
    {"kind": "status", "status": 503},
    {"kind": "status", "status": 503, "retry_after": 1},
]
TOO_MANY = [{"kind": "status", "status": 429}, {"kind": "status", "status": 429, "retry_after": 1}]
CLASSES: dict[str, dict[str, Any]] = {
    "reset-before": {"paths": REPORTS, "every": 3, "faults": [{"kind": "reset_before"}]},
    "reset-after": {"paths": REPORTS, "every": 3, "faults": [{"kind": "reset_after"}]},
    "5xx": {"paths": REPORTS, "every": 3, "faults": SERVER_ERRORS},
    "429": {"paths": REPORTS, "every": 3, "faults": TOO_MANY},
    # A proxy that takes no body over 4 KiB: every batch above is refused, and the agent
    # sends halves until they pass (a single report that large would be dropped).
    "413": {
        "paths": BATCHES,
        "min_bytes": 4 * 1024,
        "every": 1,
        "faults": [{"kind": "status", "status": 413}],
    },
    # Every report: a delayed request makes the next batch bigger, so on a loaded machine
    # a job may need only a handful of requests, and every third could meet one delay.
    "delay": {"paths": REPORTS, "every": 1, "faults": [{"kind": "delay", "max_s": 2.0}]},
    "truncate": {"paths": REPORTS, "every": 3, "faults": [{"kind": "truncate"}]},
    "garble": {"paths": REPORTS, "every": 3, "faults": [{"kind": "garble"}]},
}
MIXED = [
    {"kind": "reset_before"},
    {"kind": "reset_after"},
    *SERVER_ERRORS,
    *TOO_MANY,
    {"kind": "delay", "max_s": 2.0},
    {"kind": "truncate"},
    {"kind": "garble"},
]


MIXED_SCRIPT = {
    "seed": 1606,
    "rules": [
        # The claim is left alone here: a lost claim answer is the crash tests' subject.
        {"paths": "^/api/training/agent/claim/", "rate": 0.0, "faults": MIXED},
        {"paths": REPORTS, "every": 2, "cycle": True, "faults": MIXED},
        {"paths": "^/api/", "rate": 0.2, "faults": MIXED},  # polls
    ],
}
REFUSALS = [{"kind": "status", "status": 409}, {"kind": "status", "status": 422}]
SCRIPTS = {
    **{name: {"seed": 16, "rules": [rule]} for name, rule in CLASSES.items()},
    "mixed": MIXED_SCRIPT,
    "refused": {"seed": 16, "rules": [{"paths": BATCHES, "every": 4, "faults": REFUSALS}]},
}
CLAIMED = re.compile(r"job (\S+) claimed")


@dataclass
class Run:
    """One agent's run through its proxy: the job it ran, how it ended, what it met."""

    owner: Owner
    job_id: str
    code: int
    output: str
    injected: list[dict[str, Any]]

    def assert_delivered_exactly_once(self) -> None:
        assert self.code == 0, self.output
        assert "Traceback" not in self.output, self.output
        assert self.owner.state(self.job_id)["status"] == "completed"
        assert self.owner.steps(self.job_id) == list(range(1, POINTS + 1))
        assert self.owner.logs(self.job_id) == [f"line {n}" for n in range(1, LINES + 1)]
        assert self.output.count(f"job {self.job_id}: all reports delivered") == 1


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """Every script at once: one backend, one job per script, each agent behind its own
    proxy. They run side by side (the suite's time is the slowest one's); which job an
    agent takes does not matter, its log says which."""
    tmp = tmp_path_factory.mktemp("faults")
    with start_backend(tmp / "backend") as backend, contextlib.ExitStack() as stack:
        owner = Owner(backend, make_user_and_key(backend, "fay"))
        for _ in SCRIPTS:
            submit_job(owner)
        proxies = {
            name: stack.enter_context(start_fault_proxy(tmp / name, backend.url, script))
            for name, script in SCRIPTS.items()
        }
        agents = {name: start(owner, tmp / name, proxy.url) for name, proxy in proxies.items()}
        done = {name: finish(agent, tmp / name) for name, agent in agents.items()}
        yield {
            name: Run(owner, job_of(output), code, output, proxies[name].injected())
            for name, (code, output) in done.items()
        }


def submit_job(owner: Owner) -> str:
    return job_faults.submit_job(owner, TRAINER, "faults")


def start(owner: Owner, here: Path, proxy_url: str) -> subprocess.Popen[bytes]:
    return job_faults.start_agent(owner, here, proxy_url)


def finish(agent: subprocess.Popen[bytes], here: Path) -> tuple[int, str]:
    try:
        code = agent.wait(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        agent.kill()
        agent.wait()
        code = -9
    return code, (here / "agent.out").read_text(errors="replace")


def job_of(output: str) -> str:
    found = CLAIMED.search(output)
    assert found, f"the agent claimed no job:\n{output}"
    return found.group(1)


@pytest.mark.parametrize("fault_class", list(CLASSES))
def test_each_fault_class_loses_and_duplicates_nothing(
    runs: dict[str, Run], fault_class: str
) -> None:
    run = runs[fault_class]
    run.assert_delivered_exactly_once()
    reports = [f for f in run.injected if "/heartbeat" not in f["path"]]
    assert len(reports) >= 2, run.injected  # the class was really met, more than once


def test_all_faults_mixed_lose_and_duplicate_nothing(runs: dict[str, Run]) -> None:
    run = runs["mixed"]
    run.assert_delivered_exactly_once()
    kinds = {(f["kind"], f.get("status"), f.get("retry_after")) for f in run.injected}
    assert len(kinds) >= 5, run.injected  # several classes, in one job


def test_refused_batches_are_dropped_with_one_line_each_and_the_rest_arrives(
    runs: dict[str, Run],
) -> None:
    run = runs["refused"]
    assert run.code == 0, run.output
    assert run.injected, "no batch was refused"
    lost_lines = {line for f in run.injected for line in f["body"].get("logs", [])}
    lost_steps = {p["step"] for f in run.injected for p in f["body"].get("metrics", [])}
    expected_lines = [f"line {n}" for n in range(1, LINES + 1)]
    assert run.owner.logs(run.job_id) == [x for x in expected_lines if x not in lost_lines]
    assert run.owner.steps(run.job_id) == [s for s in range(1, POINTS + 1) if s not in lost_steps]
    dropped = [x for x in run.output.splitlines() if "rejected by the backend, dropped" in x]
    assert len(dropped) == len(run.injected), run.output
    assert run.owner.state(run.job_id)["status"] == "completed"
