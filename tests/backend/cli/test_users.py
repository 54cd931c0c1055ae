"""``training-backend users create`` and ``set-password``: where the password comes from,
and what goes to stdout (machine-readable) and stderr (what happened)."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from training_backend.cli import main
from training_backend.cli.users import choose_password
from training_backend.db import create_db_engine, create_session_factory
from training_backend.db.types import utcnow
from training_backend.errors import ApiError
from training_backend.services.sessions import authenticate_session, create_session
from training_backend.services.users import authenticate_password, get_user_by_name

PTY_TIMEOUT_S = 60.0


def can_sign_in(url: str, name: str, password: str) -> bool:
    engine = create_db_engine(url)
    try:
        with create_session_factory(engine)() as db:
            return authenticate_password(db, name=name, password=password) is not None
    finally:
        engine.dispose()


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(
    url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Run]:
    def run_cli(*args: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main([*args, "--database-url", url])
        out, err = capsys.readouterr()
        return code, out, err

    yield run_cli


def test_without_a_terminal_a_password_is_generated_and_printed_once(run: Run, url: str) -> None:
    code, out, err = run("users", "create", "alice")

    user_id, password = out.splitlines()
    assert code == 0 and len(user_id) == 36
    assert err.strip() == (
        "Generated a password for alice: it is the second line of the output "
        "and is not shown again."
    )
    assert can_sign_in(url, "alice", password)
    assert not can_sign_in(url, "alice", password + "x")


def test_password_stdin_reads_one_line_and_prints_only_the_id(run: Run, url: str) -> None:
    code, out, err = run("users", "create", "bob", "--password-stdin", stdin="s3cret pass\nmore\n")
    assert code == 0 and len(out.strip()) == 36 and "\n" not in out.strip()
    assert err.strip() == "Password read from standard input."
    assert can_sign_in(url, "bob", "s3cret pass")


def test_a_short_password_is_refused_and_no_user_is_made(run: Run) -> None:
    code, out, err = run("users", "create", "carl", "--password-stdin", stdin="short\n")
    assert (code, out) == (1, "")
    assert err == "training-backend: A password must be 8 to 1024 characters long.\n"
    code, _, err = run("users", "create", "carl", "--password-stdin", stdin="long enough\n")
    assert code == 0


def test_no_password_makes_a_user_for_api_keys_only(run: Run, url: str) -> None:
    code, out, err = run("users", "create", "svc", "--no-password")
    assert (code, err) == (0, "")
    assert len(out.strip()) == 36
    assert not can_sign_in(url, "svc", "")


def test_set_password_replaces_it(run: Run, url: str) -> None:
    run("users", "create", "dora", "--password-stdin", stdin="first password\n")
    code, out, _ = run("users", "set-password", "dora", "--password-stdin", stdin="second one!\n")
    assert (code, out) == (0, "")
    assert can_sign_in(url, "dora", "second one!")
    assert not can_sign_in(url, "dora", "first password")
    code, out, _ = run("users", "set-password", "dora")  # not a terminal: generated
    assert code == 0 and can_sign_in(url, "dora", out.strip())


def test_set_password_signs_the_user_out_everywhere(run: Run, url: str) -> None:
    run("users", "create", "eve", "--password-stdin", stdin="first password\n")
    engine = create_db_engine(url)
    try:
        with create_session_factory(engine)() as db:
            user = get_user_by_name(db, name="eve")
            _, token = create_session(
                db, user_id=user.id, now=utcnow(), lifetime=timedelta(hours=1)
            )

        code, _, err = run(
            "users", "set-password", "eve", "--password-stdin", stdin="second one!\n"
        )

        assert code == 0 and "Signed eve out of 1 session(s)." in err
        with create_session_factory(engine)() as db, pytest.raises(ApiError) as refused:
            authenticate_session(db, token=token, now=utcnow())
        assert refused.value.status == 401
    finally:
        engine.dispose()


def test_the_two_modes_exclude_each_other(run: Run) -> None:
    with pytest.raises(SystemExit) as exited:
        run("users", "create", "x", "--password-stdin", "--no-password")
    assert exited.value.code == 2


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_password_is_asked_twice() -> None:
    answers = iter(["typed password", "typed password"])
    prompts: list[str] = []

    def prompt(text: str) -> str:
        prompts.append(text)
        return next(answers)

    chosen = choose_password(name="eve", from_stdin=False, stdin=FakeTerminal(), prompt=prompt)

    assert (chosen.password, chosen.generated, chosen.note) == (
        "typed password",
        False,
        "Password set.",
    )
    assert prompts == ["Password for eve: ", "Repeat the password: "]


def test_two_different_answers_are_refused() -> None:
    answers = iter(["typed password", "typo password"])
    with pytest.raises(ApiError) as refused:
        choose_password(
            name="eve", from_stdin=False, stdin=FakeTerminal(), prompt=lambda _: next(answers)
        )
    assert refused.value.message == "The two passwords differ; run the command again"


def _talk(fd: int, terminal: int, script: list[tuple[bytes, bytes]]) -> bytes:
    """Answer each expected prompt on the terminal; returns everything it showed.

    Our copy of the terminal side stays open until the child has shown something (until
    then reading our side fails), then it is closed so that we see the child's end.
    """
    shown = b""
    deadline = time.monotonic() + PTY_TIMEOUT_S
    for expected, answer in script:
        while expected not in shown:
            assert time.monotonic() < deadline, f"no {expected!r} in {shown!r}"
            if select.select([fd], [], [], 1.0)[0]:
                shown += os.read(fd, 1024)
        if terminal >= 0:
            os.close(terminal)
            terminal = -1
        os.write(fd, answer)
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # the child closed the terminal
            return shown
        if not chunk:
            return shown
        shown += chunk


# Runs in a new session: opening the terminal by name makes it the controlling terminal,
# which getpass needs (it prompts on /dev/tty), then becomes the command.
ON_TERMINAL = """
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
for target in (0, 1, 2):
    os.dup2(fd, target)
os.execv(sys.argv[2], sys.argv[2:])
"""


def test_a_real_terminal_prompts_without_echo(url: str) -> None:
    argv = [sys.executable, "-m", "training_backend.cli", "users", "create", "tty-user"]
    argv += ["--database-url", url]
    fd, terminal = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-c", ON_TERMINAL, os.ttyname(terminal), *argv],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        shown = _talk(
            fd,
            terminal,
            [
                (b"Password for tty-user: ", b"typed on a tty\n"),
                (b"Repeat the password: ", b"typed on a tty\n"),
            ],
        )
    finally:
        child.kill()  # no-op once it has exited
        code = child.wait(timeout=PTY_TIMEOUT_S)
        os.close(fd)

    assert code == 0
    assert b"typed on a tty" not in shown  # not echoed
    assert b"Password set." in shown
    assert can_sign_in(url, "tty-user", "typed on a tty")
