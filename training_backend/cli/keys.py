"""``training-backend keys create --user NAME``: an API key, printed once."""

from __future__ import annotations

import argparse

from training_backend.cli.common import Subcommands, add_command, open_database
from training_backend.db.types import utcnow
from training_backend.services import api_keys, users


def keys_create(args: argparse.Namespace) -> int:
    """Create an API key for a user and print the key (it is not shown again)."""
    with open_database(args) as db:
        user = users.get_user_by_name(db, name=args.user)
        name = args.name or f"cli key {utcnow():%Y-%m-%d %H:%M:%S}"
        scopes = args.scope or ["training"]
        _, key = api_keys.create_api_key(db, user_id=user.id, name=name, scopes=scopes)
    print(key)
    return 0


def add_keys_parser(commands: Subcommands) -> None:
    """``keys create`` on the ``training-backend`` command line."""
    group = commands.add_parser("keys", help="Manage API keys.").add_subparsers(required=True)
    key = add_command(group, "create", keys_create, "Create an API key; prints only the key.")
    key.add_argument("--user", required=True, help="name of the key's owner")
    key.add_argument("--scope", action="append", help="scope (repeatable; default training)")
    key.add_argument("--name", help="label shown in key lists")
