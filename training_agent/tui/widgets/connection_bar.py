"""The top two lines: how the agent is linked to the backend, and who it is.

● connected · long poll        agent_3f2a9c0d1e4b5a6f  training-agent 0.1.0
https://app.example.com   last poll 3s ago, 12 ms   claiming new jobs
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from training_agent.tui.model import Attach, DashboardModel
from training_agent.tui.text import duration, printable

# state -> (mark, words, style)
_LINK: dict[str, tuple[str, str, str]] = {
    "starting": ("◌", "starting: no poll answered yet", "yellow"),
    "connected": ("●", "connected", "bold green"),
    "unreachable": ("✕", "backend unreachable", "bold red"),
    "rejected": ("✕", "API key rejected", "bold red"),
    "refused": ("✕", "requests refused by the backend", "bold red"),
    "revoked": ("✕", "agent revoked on the platform", "bold red"),
}
_ATTACH: dict[Attach, tuple[str, str]] = {
    Attach.CONNECTING: ("looking for the agent…", "yellow"),
    Attach.NO_AGENT: ("no agent is running here", "bold red"),
    Attach.LOST: ("lost the agent's status API; retrying", "bold red"),
}


class ConnectionBar(Static):
    """Connection state, backend URL, agent id, version, last poll and its latency."""

    DEFAULT_CSS = """
    ConnectionBar { height: auto; max-height: 4; padding: 0 1; }
    """

    def show(self, model: DashboardModel, now: float) -> None:
        self.update(render_connection(model, now))


def render_connection(model: DashboardModel, now: float) -> Text:
    snapshot = model.snapshot
    if model.attach is not Attach.ATTACHED or snapshot is None:
        words, style = _ATTACH.get(model.attach, _ATTACH[Attach.CONNECTING])
        text = Text.assemble(("✕ " if model.attach is not Attach.CONNECTING else "◌ ", style))
        text.append(words, style)
        if model.attach_reason:
            text.append(f"\n{printable(model.attach_reason)}", "dim")
        return text
    lines = [_first_line(snapshot, now), _second_line(snapshot, now)]
    connection = snapshot.get("connection") or {}
    if connection.get("reason") and connection.get("state") != "connected":
        lines.append(Text(printable(connection["reason"]), "red"))
    return Text("\n").join(lines)


def _first_line(snapshot: dict[str, Any], now: float) -> Text:
    connection = snapshot.get("connection") or {}
    state = str(connection.get("state"))
    mark, words, style = _LINK.get(state, ("?", printable(state), "yellow"))
    text = Text(f"{mark} {words}", style)
    if state == "connected" and connection.get("long_poll"):
        text.append(" · long-polling", "green")
    if connection.get("next_retry_at") and state != "connected":
        text.append(f" · retry in {duration(connection['next_retry_at'] - now)}", "yellow")
    if snapshot.get("draining"):
        text.append(" · draining", "bold yellow")
    who = f"   {snapshot.get('agent_id')}  v{snapshot.get('version')}"
    text.append(printable(who), "dim")
    return text


def _second_line(snapshot: dict[str, Any], now: float) -> Text:
    connection = snapshot.get("connection") or {}
    text = Text(printable(snapshot.get("backend_url")), "underline")
    if connection.get("last_poll_at"):
        text.append(f"  last poll {duration(now - connection['last_poll_at'])} ago")
        if connection.get("last_poll_latency_s") is not None:
            text.append(f", {connection['last_poll_latency_s'] * 1000:.0f} ms")
    if snapshot.get("draining"):
        text.append("  not claiming (d resumes)", "yellow")
    else:
        text.append("  claiming new jobs", "dim")
    return text
