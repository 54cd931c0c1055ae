"""``training-backend users create NAME`` and ``users set-password NAME``.

Where the password comes from:

    --password-stdin          the first line of standard input (for scripts)
    a terminal on stdin       asked twice, not echoed
    anything else             generated, and printed once on stdout's second line

The commands say on stderr which of these happened; stdout stays machine-readable.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from training_backend.cli.common import Subcommands, add_command, open_database
from training_backend.errors import ApiError
from training_backend.services import users
from training_backend.services.passwords import check_password_rules, generate_password

Prompt = Callable[[str], str]


@dataclass(frozen=True)
class ChosenPassword:
    """A password and how it was obtained."""

    password: str
    generated: bool
    note: str
    """One sentence for stderr saying where the password came from."""


def choose_password(
    *, name: str, from_stdin: bool, stdin: TextIO, prompt: Prompt = getpass.getpass
) -> ChosenPassword:
    """The password for user ``name``, from stdin, a prompt, or generated."""
    if from_stdin:
        password = stdin.readline().rstrip("\r\n")
        check_password_rules(password)
        return ChosenPassword(password, False, "Password read from standard input.")
    if stdin.isatty():
        return ChosenPassword(_ask_twice(name, prompt), False, "Password set.")
    note = (
        f"Generated a password for {name}: it is the second line of the output "
        "and is not shown again."
    )
    return ChosenPassword(generate_password(), True, note)


def _ask_twice(name: str, prompt: Prompt) -> str:
    password = prompt(f"Password for {name}: ")
    check_password_rules(password)
    if prompt("Repeat the password: ") != password:
        raise ApiError(400, "PASSWORD_MISMATCH", "The two passwords differ; run the command again")
    return password


def users_create(args: argparse.Namespace) -> int:
    """Create a user and print its id (then a generated password, if one was made)."""
    chosen = None
    if not args.no_password:
        chosen = choose_password(name=args.name, from_stdin=args.password_stdin, stdin=sys.stdin)
    with open_database(args) as db:
        password = None if chosen is None else chosen.password
        user = users.create_user(db, name=args.name, password=password)
    print(user.id)
    if chosen is not None:
        print(chosen.note, file=sys.stderr)
        if chosen.generated:
            print(chosen.password)
    return 0


def users_set_password(args: argparse.Namespace) -> int:
    """Replace a user's password and end their sessions (prints a generated password)."""
    with open_database(args) as db:
        user = users.get_user_by_name(db, name=args.name)
        chosen = choose_password(name=user.name, from_stdin=args.password_stdin, stdin=sys.stdin)
        ended = users.set_password(db, user_id=user.id, password=chosen.password)
    print(chosen.note, file=sys.stderr)
    print(f"Signed {user.name} out of {ended} session(s).", file=sys.stderr)
    if chosen.generated:
        print(chosen.password)
    return 0


def add_users_parser(commands: Subcommands) -> None:
    """``users create`` and ``users set-password`` on the ``training-backend`` command line."""
    group = commands.add_parser("users", help="Manage users.").add_subparsers(required=True)
    create = add_command(group, "create", users_create, "Create a user; prints its id.")
    create.add_argument("name")
    source = create.add_mutually_exclusive_group()
    source.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    source.add_argument(
        "--no-password", action="store_true", help="no password: API keys only, no sign-in"
    )
    reset = add_command(
        group,
        "set-password",
        users_set_password,
        "Replace a user's password; signs the user out everywhere.",
    )
    reset.add_argument("name")
    reset.add_argument("--password-stdin", action="store_true", help="read it from stdin")
