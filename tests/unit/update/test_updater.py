"""The self-update in the daemon: an offer is downloaded from the (fake) backend,
verified against the build's own keys, unpacked and tried; then the switch, the trial of
the new build, its confirmation or its rollback. Each version is tried once."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from tests.support.fake_backend import API_KEY, IDENTITY
from training_agent.api import BackendClient
from training_agent.api.models import PollResponse
from training_agent.update import updater as updater_module
from training_agent.update.layout import InstallLayout
from training_agent.update.record import Trial, UpdateRecord
from training_agent.update.signature import public_key_text, sign
from training_agent.update.updater import TRIAL_S, Updater, UpdateState

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the linked layout is Linux and macOS")

NEW = "0.3.0"
NAME = f"training-agent-{NEW}-linux-amd64.tar.gz"
KEY = Ed25519PrivateKey.generate()


def build_script(version: str, exit_code: int = 0) -> bytes:
    return f"#!/bin/sh\necho 'training-agent {version}'\nexit {exit_code}\n".encode()


def release(version: str = NEW, *, exit_code: int = 0) -> bytes:
    """A release archive: one folder with an executable (a script) and ``_internal``."""
    stem = f"training-agent-{version}-linux-amd64"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data, mode in (
            ("training-agent", build_script(version, exit_code), 0o755),
            ("_internal/base_library.zip", b"library", 0o644),
            ("install.sh", b"#!/bin/sh\n", 0o755),
        ):
            info = tarfile.TarInfo(f"{stem}/{name}")
            info.size, info.mode = len(data), mode
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


ARCHIVE = release()


def offer(
    version: str = NEW,
    *,
    data: bytes = ARCHIVE,
    signed_by: Ed25519PrivateKey | None = KEY,
    downgrade: bool = False,
) -> PollResponse:
    name = f"training-agent-{version}-linux-amd64.tar.gz"
    sha256 = hashlib.sha256(data).hexdigest()
    archive = {
        "arch": "amd64",
        "filename": name,
        "url": "http://backend.test/x",
        "sha256": sha256,
        "signature": None if signed_by is None else sign(signed_by, name, sha256),
    }
    update = {"version": version, "downgrade": downgrade, "archives": [archive]}
    return PollResponse.model_validate({"job": None, "agent_update": update})


class Server:
    """The backend's download endpoint: serves ``body``, counts requests."""

    def __init__(self, body: bytes = ARCHIVE) -> None:
        self.body = body
        self.requests: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        return httpx.Response(200, content=self.body)


@pytest.fixture
def layout(tmp_path: Path) -> InstallLayout:
    """An install directory whose current build is 0.2.0."""
    layout = InstallLayout(tmp_path / "bin", platform="linux")
    folder = layout.new_folder("0.2.0")
    (folder / "training-agent").write_bytes(build_script("0.2.0"))
    (folder / "training-agent").chmod(0o755)
    layout.activate(folder)
    return layout


Make = Callable[..., Updater]


@pytest.fixture
def make(tmp_path: Path, layout: InstallLayout) -> Make:
    def make(server: Server | None = None, **overrides: Any) -> Updater:
        client = BackendClient(
            base_url="http://backend.test",
            api_key=SecretStr(API_KEY),
            identity=IDENTITY,
            transport=httpx.MockTransport(server or Server()),
        )
        options: dict[str, Any] = {
            "client": client,
            "record": UpdateRecord.load(tmp_path / "state" / "update.json"),
            "layout": layout,
            "version": "0.2.0",
            "platform": "linux",
            "arch": "amd64",
            "keys": (public_key_text(KEY.public_key()),),
            "work_dir": tmp_path / "state",
        }
        return Updater(**{**options, **overrides})

    return make


def state_of(updater: Updater) -> UpdateState:
    """The state now (a call, so that the checker does not keep an earlier one)."""
    return updater.status.state


async def settle(updater: Updater) -> None:
    task = updater._task
    if task is not None:
        await asyncio.wait_for(task, 30)


async def test_a_signed_newer_build_is_prepared_then_switched_to(
    make: Make, layout: InstallLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = layout.current()
    server = Server()
    updater = make(server)
    ready: list[bool] = []
    updater.on_ready = lambda: ready.append(True)

    updater.observe(offer())
    assert state_of(updater) is UpdateState.PENDING
    await settle(updater)

    assert state_of(updater) is UpdateState.READY and ready == [True]
    assert server.requests == ["http://backend.test/api/workers/download/linux?arch=amd64"]
    assert layout.current() == old  # nothing switched while jobs may still run
    executed: list[Path] = []
    monkeypatch.setattr(updater_module, "execute_build", lambda link, _: executed.append(link))
    updater.restart()

    assert executed == [layout.link]
    new = layout.current()
    assert new != old and new is not None and new.name.startswith(f"{NEW}-")
    assert (new / "_internal" / "base_library.zip").read_bytes() == b"library"
    assert not (new / "install.sh").exists()  # only the build itself is installed
    record = UpdateRecord.load(updater._record.path)
    assert record.trial is not None and record.trial.to_version == NEW
    assert record.trial.from_folder == str(old)
    assert record.attempts[NEW]["outcome"] == "installed"
    assert state_of(updater) is UpdateState.UPDATING


async def test_a_stop_before_the_switch_drops_the_staged_build(
    make: Make, layout: InstallLayout
) -> None:
    before = sorted(layout.versions_dir.iterdir())
    updater = make()
    updater.observe(offer())
    await settle(updater)
    assert len(list(layout.versions_dir.iterdir())) == 2

    updater.discard()

    assert sorted(layout.versions_dir.iterdir()) == before
    assert not updater.wants_restart


@pytest.mark.parametrize(
    ("response", "served", "reason"),
    [
        (offer(signed_by=Ed25519PrivateKey.generate()), ARCHIVE, "refused " + NAME),
        (offer(signed_by=None), ARCHIVE, f"{NAME} is not signed"),
        (offer(), ARCHIVE[:-10], "does not match its SHA-256"),
        (offer("0.1.0"), release("0.1.0"), "refused: 0.1.0 is older than 0.2.0"),
        (offer(data=release(exit_code=3)), release(exit_code=3), "does not start on this"),
    ],
    ids=["untrusted key", "unsigned", "tampered", "downgrade", "broken build"],
)
async def test_what_cannot_be_trusted_or_started_is_refused_once(
    make: Make, layout: InstallLayout, response: PollResponse, served: bytes, reason: str
) -> None:
    before = sorted(layout.versions_dir.iterdir())
    server = Server(served)
    updater = make(server)

    updater.observe(response)
    await settle(updater)
    updater.observe(response)  # offered again: not tried again
    await settle(updater)

    assert state_of(updater) is UpdateState.FAILED
    assert reason in (updater.status.reason or "")
    assert len(server.requests) <= 1
    assert sorted(layout.versions_dir.iterdir()) == before  # nothing half-installed
    assert updater.status.as_info() == {
        "state": "failed",
        "version": response.agent_update.version if response.agent_update else None,
        "reason": updater.status.reason,
    }


async def test_a_downgrade_the_backend_asks_for_is_taken(make: Make) -> None:
    older = release("0.1.0")
    updater = make(Server(older))
    updater.observe(offer("0.1.0", data=older, downgrade=True))
    await settle(updater)
    assert state_of(updater) is UpdateState.READY


async def test_a_full_disk_is_one_sentence_and_leaves_nothing(
    make: Make, layout: InstallLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(archive: Path, folder: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(updater_module, "unpack", full)
    updater = make()
    updater.observe(offer())
    await settle(updater)

    assert updater.status.reason == (
        "cannot write the new version (No space left on device); tried again in an hour"
    )
    assert len(list(layout.versions_dir.iterdir())) == 1


class Down(Server):
    """A backend whose download fails (its upstream is down) until ``up``."""

    up = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        if self.up:
            return httpx.Response(200, content=self.body)
        error = {"error": "the release server did not answer", "code": "RELEASE_UNAVAILABLE"}
        return httpx.Response(502, json=error)


async def test_a_failed_download_is_tried_again_an_hour_later_not_at_each_poll(
    make: Make, layout: InstallLayout
) -> None:
    now = [1000.0]
    server = Down()
    updater = make(server, clock=lambda: now[0])

    updater.observe(offer())
    await settle(updater)
    assert state_of(updater) is UpdateState.FAILED
    assert updater.status.reason == (
        "the backend answered 502 to GET /api/workers/download/linux?arch=amd64: "
        "the release server did not answer; tried again in an hour"
    )
    updater.observe(offer())  # the next poll: not tried again yet
    await settle(updater)
    assert len(server.requests) == 1

    now[0] += 3600
    server.up = True
    updater.observe(offer())
    await settle(updater)

    assert len(server.requests) == 2
    assert state_of(updater) is UpdateState.READY


async def test_after_a_failed_version_a_newer_one_is_still_taken(make: Make) -> None:
    newer = release("0.4.0")
    server = Server(newer)
    updater = make(server)
    updater.observe(offer(signed_by=Ed25519PrivateKey.generate()))
    await settle(updater)
    assert state_of(updater) is UpdateState.FAILED

    updater.observe(offer("0.4.0", data=newer))
    await settle(updater)

    assert (state_of(updater), updater.status.version) == (UpdateState.READY, "0.4.0")


async def test_an_install_that_does_not_update_itself_says_how_to_upgrade(make: Make) -> None:
    server = Server()
    updater = make(server, disabled="installed with pip: upgrade with 'pipx upgrade …'")

    updater.observe(offer())

    assert state_of(updater) is UpdateState.AVAILABLE
    assert updater.status.reason == "installed with pip: upgrade with 'pipx upgrade …'"
    assert server.requests == []


def trial_of(layout: InstallLayout, tmp_path: Path, *, deadline: float) -> Trial:
    """Switch ``layout`` to a new build as a restart would; the trial it is on."""
    old = layout.current()
    new = layout.new_folder(NEW)
    (new / "training-agent").write_bytes(build_script(NEW))
    folder = layout.activate(new)
    return Trial("0.2.0", str(old), NEW, str(folder), deadline=deadline, starts=1)


async def test_the_first_successful_poll_confirms_a_build_on_trial(
    make: Make, layout: InstallLayout, tmp_path: Path
) -> None:
    trial = trial_of(layout, tmp_path, deadline=10**10)
    previous = Path(trial.from_folder)
    updater = make(version=NEW, trial=trial)
    assert state_of(updater) is UpdateState.TRIAL

    updater.observe(PollResponse.model_validate({"job": None}))

    record = UpdateRecord.load(updater._record.path)
    assert record.trial is None and record.attempts[NEW]["outcome"] == "confirmed"
    assert state_of(updater) is UpdateState.IDLE
    assert sorted(layout.versions_dir.iterdir()) == sorted([previous, Path(trial.to_folder)])


async def test_a_build_that_does_not_poll_in_time_is_rolled_back(
    make: Make, layout: InstallLayout, tmp_path: Path
) -> None:
    now = [1000.0]
    trial = trial_of(layout, tmp_path, deadline=now[0] + TRIAL_S)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    updater = make(version=NEW, trial=trial, clock=lambda: now[0], sleep=sleep)
    stops: list[bool] = []
    updater.on_ready = lambda: stops.append(True)

    await updater.watch_trial()

    assert slept == [TRIAL_S] and stops == [True] and updater.wants_restart
    assert layout.current() == Path(trial.from_folder).resolve()
    record = UpdateRecord.load(updater._record.path)
    assert record.trial is None
    assert record.attempts[NEW] == {
        "outcome": "failed",
        "reason": f"training-agent {NEW} did not reach its first successful poll within 120 s",
        "at": now[0],
    }
    # the old build, started again, shows why on the page
    old = make(record=record)
    assert old.status.as_info() == {
        "state": "failed",
        "version": NEW,
        "reason": record.attempts[NEW]["reason"],
    }


async def test_the_trial_lasts_update_trial_seconds(
    make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    updater = make(trial_s=15.0, clock=lambda: now[0])
    updater.observe(offer())
    await settle(updater)
    monkeypatch.setattr(updater_module, "execute_build", lambda *_: None)
    updater.restart()
    trial = UpdateRecord.load(updater._record.path).trial
    assert trial is not None and trial.deadline == 1015.0

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    new = make(version=NEW, trial=trial, trial_s=15.0, clock=lambda: now[0], sleep=sleep)
    await new.watch_trial()  # the fake sleep returns at once: the deadline "passed"
    reason = UpdateRecord.load(updater._record.path).attempts[NEW]["reason"]
    assert slept == [15.0] and reason.endswith("first successful poll within 15 s")
