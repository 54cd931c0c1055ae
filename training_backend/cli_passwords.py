"""Where ``users create`` and ``users set-password`` get a password from.

    --password-stdin          the first line of standard input (for scripts)
    a terminal on stdin       asked twice, not echoed
    anything else             generated, and printed once on stdout's second line

The commands say on stderr which of these happened; stdout stays machine-readable.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from training_backend.errors import ApiError
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
