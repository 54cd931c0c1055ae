"""``training-backend``: serve the API and manage users, keys, jobs and agents.

    training-backend serve [--host H] [--port P] [--log-level L]
    training-backend users create NAME [--password-stdin | --no-password]
    training-backend users set-password NAME [--password-stdin]
    training-backend keys create --user NAME [--scope training]... [--name N]
    training-backend jobs submit --user NAME --file job.json [--dataset FILE]
    training-backend jobs show ID [--json]
    training-backend agents list [--user NAME] [--json]
    training-backend releases add PATH... [--releases-dir DIR]

Every command takes ``--database-url`` (default: ``TRAINING_BACKEND_DATABASE_URL``, then
a SQLite file in the user data directory) and migrates that database before using it.
Commands that create something print only its key or id, so scripts can capture it.
``users create`` asks for the password twice (hidden) on a terminal, reads one line with
``--password-stdin``, and otherwise generates one: then stdout's second line is that
password, shown only this once. Which of these happened is said on stderr.
Errors are one sentence on stderr: exit 1 for a failed command, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TypeAlias

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from training_backend import __version__
from training_backend.cli_commands import (
    agents_list,
    jobs_show,
    jobs_submit,
    keys_create,
    serve,
    users_create,
    users_set_password,
)
from training_backend.cli_releases import add_releases_parser
from training_backend.db.engine import DatabaseUrlError
from training_backend.errors import ApiError

Command = Callable[[argparse.Namespace], int]
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database-url",
        help="SQLAlchemy URL of the database (env TRAINING_BACKEND_DATABASE_URL)",
    )
    return common


def _add(group: Subcommands, name: str, command: Command, help: str) -> argparse.ArgumentParser:
    parser = group.add_parser(name, parents=[_common()], help=help, description=help)
    parser.set_defaults(command=command)
    return parser


def _add_serve(commands: Subcommands) -> None:
    parser = _add(commands, "serve", serve, "Run the HTTP API (migrates the database first).")
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (default 8000)")
    levels = ["critical", "error", "warning", "info", "debug"]
    parser.add_argument("--log-level", choices=levels, default="info")


def _add_users_and_keys(commands: Subcommands) -> None:
    users = commands.add_parser("users", help="Manage users.").add_subparsers(required=True)
    create = _add(users, "create", users_create, "Create a user; prints its id.")
    create.add_argument("name")
    source = create.add_mutually_exclusive_group()
    source.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    source.add_argument(
        "--no-password", action="store_true", help="no password: API keys only, no sign-in"
    )
    reset = _add(users, "set-password", users_set_password, "Replace a user's password.")
    reset.add_argument("name")
    reset.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    keys = commands.add_parser("keys", help="Manage API keys.").add_subparsers(required=True)
    key = _add(keys, "create", keys_create, "Create an API key; prints only the key.")
    key.add_argument("--user", required=True, help="name of the key's owner")
    key.add_argument("--scope", action="append", help="scope (repeatable; default training)")
    key.add_argument("--name", help="label shown in key lists")


def _add_jobs_and_agents(commands: Subcommands) -> None:
    jobs = commands.add_parser("jobs", help="Submit and show jobs.").add_subparsers(required=True)
    submit = _add(jobs, "submit", jobs_submit, "Queue a job; prints only its id.")
    submit.add_argument("--user", required=True, help="name of the job's owner")
    submit.add_argument("--file", required=True, help="the POST /api/training/jobs body")
    submit.add_argument("--dataset", help="upload this file as the job's dataset")
    show = _add(jobs, "show", jobs_show, "Show a job with its metric and log counts.")
    show.add_argument("job_id")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    agents = commands.add_parser("agents", help="List agents.").add_subparsers(required=True)
    listing = _add(agents, "list", agents_list, "List agents that have polled.")
    listing.add_argument("--user", help="only this user's agents")
    listing.add_argument("--json", action="store_true", help="print a JSON array")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    parser = argparse.ArgumentParser(prog="training-backend", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    _add_serve(commands)
    _add_users_and_keys(commands)
    _add_jobs_and_agents(commands)
    add_releases_parser(commands)
    return parser


def _fail(message: str) -> int:
    print(f"training-backend: {message.rstrip('.')}.", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    args = build_parser().parse_args(argv)
    command: Command = args.command
    try:
        return command(args)
    except ApiError as exc:
        return _fail(exc.message)
    except ValidationError as exc:
        return _fail(f"invalid settings: {exc.errors()[0]['msg']}")
    except DatabaseUrlError as exc:
        return _fail(str(exc))
    except SQLAlchemyError as exc:
        return _fail(f"database error: {getattr(exc, 'orig', None) or exc}")
    except OSError as exc:
        return _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
