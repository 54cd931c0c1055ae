"""What every ``training-backend`` command shares: its registration on the parser, the
settings from its flags, and a migrated database session."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias

from sqlalchemy.orm import Session

from training_backend.db import create_db_engine, create_session_factory, upgrade_database
from training_backend.settings import BackendSettings

Command = Callable[[argparse.Namespace], int]
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database-url",
        help="SQLAlchemy URL of the database (env TRAINING_BACKEND_DATABASE_URL)",
    )
    return common


def add_command(
    group: Subcommands, name: str, command: Command, help: str
) -> argparse.ArgumentParser:
    """The parser of ``command`` in ``group``, with ``--database-url``."""
    parser = group.add_parser(name, parents=[_common()], help=help, description=help)
    parser.set_defaults(command=command)
    return parser


def settings_of(args: argparse.Namespace, **flags: Any) -> BackendSettings:
    """The settings from the environment, with the flags that were given on top."""
    given = {"database_url": args.database_url, **flags}
    return BackendSettings(**{name: value for name, value in given.items() if value is not None})


@contextmanager
def open_database(args: argparse.Namespace) -> Iterator[Session]:
    """A session on the command's database, migrated to the current schema first."""
    engine = create_db_engine(settings_of(args).database_url)
    try:
        upgrade_database(engine)
        with create_session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()
