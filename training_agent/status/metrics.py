"""``/metrics``: the agent's state in the Prometheus text format.

Every value is read from ``AgentState`` at scrape time by one collector on a registry of
this agent's own (never prometheus_client's global one, so two agents in one process,
as in tests, cannot collide), plus the standard ``process_*`` metrics. Names:

    training_agent_info{agent_id, version, backend_url}          1
    training_agent_connection_state{training_agent_connection_state="connected"}  1
    training_agent_draining                                      0 | 1
    training_agent_jobs_running                                  gauge
    training_agent_jobs_finished_total{status}                   counter
    training_agent_polls_total, training_agent_poll_errors_total counters
    training_agent_last_poll_latency_seconds                     gauge
    training_agent_last_poll_timestamp_seconds                   gauge
    training_agent_outbox_backlog{kind="logs|metrics|statuses"}  gauge
    training_agent_outbox_unfinished_jobs                        gauge
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
    StateSetMetricFamily,
)

from training_agent.status.state import AgentState

CONNECTION_STATES = ("starting", "connected", "unreachable", "rejected", "refused", "revoked")
JOB_OUTCOMES = ("completed", "failed", "cancelled")
BACKLOG_KINDS = ("logs", "metrics", "statuses")

Backlog = Callable[[], Mapping[str, int]]


class AgentCollector:
    """Yields the agent's metrics from its state and the last counted outbox backlog.

    Runs in the event loop's thread (the state is not thread-safe); the backlog, which
    reads a file, is counted beforehand in a worker thread and stored in ``backlog``.
    """

    def __init__(self, state: AgentState) -> None:
        self._state = state
        self.backlog: Mapping[str, int] | None = None

    def collect(self) -> Iterable[Metric]:
        state = self._state
        yield InfoMetricFamily(
            "training_agent",
            "The agent's identity.",
            value={
                "agent_id": state.agent_id,
                "version": state.version,
                "backend_url": state.backend_url,
            },
        )
        current = state.connection.state
        states = {name: name == current for name in {*CONNECTION_STATES, current}}
        yield StateSetMetricFamily(
            "training_agent_connection_state", "The link to the backend.", value=states
        )
        yield GaugeMetricFamily(
            "training_agent_draining", "1 while the agent claims no new jobs.", value=state.draining
        )
        yield GaugeMetricFamily(
            "training_agent_jobs_running", "Jobs running now.", value=len(state.jobs)
        )
        finished = CounterMetricFamily(
            "training_agent_jobs_finished", "Jobs finished, by outcome.", labels=["status"]
        )
        for status in sorted({*JOB_OUTCOMES, *state.jobs_finished}):
            finished.add_metric([status], state.jobs_finished[status])
        yield finished
        yield CounterMetricFamily(
            "training_agent_polls", "Polls sent to the backend.", value=state.polls_total
        )
        yield CounterMetricFamily(
            "training_agent_poll_errors",
            "Polls that failed (no answer or an error status).",
            value=state.poll_errors_total,
        )
        if state.connection.last_poll_latency_s is not None:
            yield GaugeMetricFamily(
                "training_agent_last_poll_latency_seconds",
                "Duration of the last answered poll (a long poll includes its hold).",
                value=state.connection.last_poll_latency_s,
            )
        if state.connection.last_poll_at is not None:
            yield GaugeMetricFamily(
                "training_agent_last_poll_timestamp_seconds",
                "Unix time of the last answered poll.",
                value=state.connection.last_poll_at,
            )
        yield from self._outbox()

    def _outbox(self) -> Iterable[Metric]:
        counts = self.backlog
        if counts is None:
            return
        backlog = GaugeMetricFamily(
            "training_agent_outbox_backlog",
            "Reports stored in the outbox and not yet delivered.",
            labels=["kind"],
        )
        for kind in BACKLOG_KINDS:
            backlog.add_metric([kind], counts.get(kind, 0))
        yield backlog
        yield GaugeMetricFamily(
            "training_agent_outbox_unfinished_jobs",
            "Jobs whose terminal status is not delivered yet.",
            value=counts.get("jobs", 0),
        )


def registry_for(collector: AgentCollector) -> CollectorRegistry:
    """A registry of this agent's own with its collector and the process metrics."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    ProcessCollector(registry=registry)
    return registry


def outbox_backlog(path: Path) -> Callable[[], dict[str, int]]:
    """Counts of the outbox's undelivered rows, read through a read-only connection.

    Reads the tables ``reporting/outbox.py`` documents (logs, metrics, statuses, jobs);
    a separate connection, so a scrape never waits on or disturbs the uploader's.
    """

    def count() -> dict[str, int]:
        uri = f"{path.resolve().as_uri()}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=1.0)) as db:
            counts = {
                kind: int(db.execute(f"SELECT COUNT(*) FROM {kind}").fetchone()[0])
                for kind in BACKLOG_KINDS
            }
            counts["jobs"] = int(
                db.execute("SELECT COUNT(*) FROM jobs WHERE finished = 0").fetchone()[0]
            )
        return counts

    return count
