"""``training-backend``: serve the API and manage users, keys, jobs and agents.

    training-backend serve [--host H] [--port P] [--log-level L]
    training-backend users create NAME [--password-stdin | --no-password]
    training-backend users set-password NAME [--password-stdin]
    training-backend keys create --user NAME [--scope training]... [--name N]
    training-backend jobs submit --user NAME --file job.json [--dataset FILE]
    training-backend jobs show ID [--json]
    training-backend jobs artifacts ID [--json]
    training-backend jobs download ID NAME [--output PATH]
    training-backend jobs delete ID
    training-backend artifacts gc [--dry-run]
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
from collections.abc import Sequence

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from training_backend import __version__
from training_backend.cli.agents import add_agents_parser
from training_backend.cli.artifacts import add_artifacts_parser
from training_backend.cli.common import Command
from training_backend.cli.jobs import add_jobs_parser
from training_backend.cli.keys import add_keys_parser
from training_backend.cli.releases import add_releases_parser
from training_backend.cli.serve import add_serve_parser
from training_backend.cli.users import add_users_parser
from training_backend.db.engine import DatabaseUrlError
from training_backend.errors import ApiError


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    parser = argparse.ArgumentParser(prog="training-backend", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    for add_parser in (
        add_serve_parser,
        add_users_parser,
        add_keys_parser,
        add_jobs_parser,
        add_agents_parser,
        add_releases_parser,
        add_artifacts_parser,
    ):
        add_parser(commands)
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
