"""``training-backend agents list``: the agents that have polled."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta
from typing import Any

from training_backend.cli.common import Subcommands, add_command, open_database, settings_of
from training_backend.db.models import TrainingAgent
from training_backend.db.types import utcnow
from training_backend.services import agents, users


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _agent_view(
    agent: TrainingAgent, user_name: str, now: datetime, threshold: timedelta
) -> dict[str, Any]:
    online = agents.is_online(agent, now=now, threshold=threshold)
    return {
        "agent_id": agent.agent_id,
        "user": user_name,
        "hostname": agent.hostname,
        "platform": agent.platform,
        "version": agent.version,
        "status": "online" if online else "offline",
        "revoked": agent.revoked_at is not None,
        "last_poll_at": _iso(agent.last_poll_at),
        "registered_at": _iso(agent.registered_at),
    }


def agents_list(args: argparse.Namespace) -> int:
    """Print the agents that have polled, newest first."""
    threshold = timedelta(seconds=settings_of(args).online_threshold_seconds)
    with open_database(args) as db:
        user_id = None if args.user is None else users.get_user_by_name(db, name=args.user).id
        now = utcnow()
        listed = agents.list_agents(db, user_id=user_id)
        rows = [_agent_view(agent, name, now, threshold) for agent, name in listed]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(
                f"{row['agent_id']}  {row['status']:<7}  {row['hostname'] or '-'}  "
                f"{row['platform'] or '-'}  {row['version'] or '-'}  {row['last_poll_at']}"
            )
    return 0


def add_agents_parser(commands: Subcommands) -> None:
    """``agents list`` on the ``training-backend`` command line."""
    group = commands.add_parser("agents", help="List agents.").add_subparsers(required=True)
    listing = add_command(group, "list", agents_list, "List agents that have polled.")
    listing.add_argument("--user", help="only this user's agents")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
