"""Zero-copy enrollment: the installer trades the token in the download for an API key.

A download from the platform's Training Agent page carries ``training-agent.enroll.json``
beside the executable: the backend's URL, a single-use enrollment token (``wae_…``) and
its expiry. ``install`` reads it when no key came from ``--api-key-stdin`` or
``API_KEY``, says which backend it will connect to, sends the token once
(``api.enroll``), and continues with the key it gets back; after the key is stored the
file is deleted. Nothing is written before the backend hands out the key.

The file's address is not trusted blindly: plain http:// to another machine is asked
about before anything is sent, and an address this machine cannot reach (the token
never arrived) gets a question for another address. With ``--yes`` or no terminal
either one is a sentence and a stop; nothing is written.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from training_agent.api.enroll import EnrollResponse, enroll_agent
from training_agent.errors import (
    ConfigError,
    CredentialError,
    HttpStatusError,
    TrainingAgentError,
    TransportError,
)
from training_agent.identity import detect_identity

ENROLL_FILE_NAME = "training-agent.enroll.json"
TOKEN_RE = re.compile(r"wae_[0-9A-Za-z]{32}")
DOWNLOAD_AGAIN = "download the agent again from the platform's Training Agent page"
MAX_ADDRESS_TRIES = 3
Ask = Callable[[str], str]


class CheckUrl(Protocol):
    """``install.check_backend_url``: the URL cleaned, ``warn`` told if not encrypted."""

    def __call__(self, value: str, *, warn: Callable[[str], None]) -> str: ...


@dataclass(frozen=True)
class EnrollmentFile:
    """What ``training-agent.enroll.json`` says; any field may be missing."""

    path: Path
    backend_url: str | None = None
    token: str | None = None
    api_key: str | None = None  # a file written by hand may carry a key instead


def read_enrollment_file(directory: Path) -> EnrollmentFile | None:
    """The enrollment file in ``directory`` (next to the executable), if there is one."""
    path = directory / ENROLL_FILE_NAME
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; {DOWNLOAD_AGAIN}") from exc

    def text(key: str) -> str | None:
        value = data.get(key)
        return value.strip() if isinstance(value, str) and value.strip() else None

    return EnrollmentFile(path, text("backend_url"), text("enrollment_token"), text("api_key"))


@dataclass(frozen=True)
class Enrolled:
    """The outcome of a trade: the backend that made the key, and the key."""

    backend_url: str
    api_key: str


@dataclass
class Enroller:
    """The installer's enrollment step; ``ask`` is ``None`` when nobody can answer."""

    file: EnrollmentFile
    say: Callable[[str], None]
    ask: Ask | None
    check_url: CheckUrl
    transport: httpx.AsyncBaseTransport | None = None  # tests: a fake backend

    def enroll(self, given_url: str | None, agent_id: str) -> Enrolled:
        """Trade the token at ``given_url`` (a flag or ``BACKEND_URL``), else at the
        file's address, for a key bound to ``agent_id``."""
        token = self._token()
        url = self._address(given_url)
        for _ in range(MAX_ADDRESS_TRIES):
            self.say(f"Enrolling this machine with {url} ({self.file.path.name}).")
            try:
                answer = self._trade(url, token, agent_id)
            except TransportError as exc:
                url = self._other_address(str(exc))
                continue
            except TrainingAgentError as exc:
                raise _refusal(url, exc, token) from exc
            self.say(f"{url} enrolled this machine; its key is named {answer.name or agent_id!r}.")
            return Enrolled(url, answer.api_key)
        raise ConfigError(f"gave up after {MAX_ADDRESS_TRIES} addresses; nothing was installed")

    def _trade(self, url: str, token: str, agent_id: str) -> EnrollResponse:
        identity = detect_identity(agent_id)
        return asyncio.run(
            enroll_agent(base_url=url, token=token, identity=identity, transport=self.transport)
        )

    def remove_file(self) -> None:
        """Delete the used-up enrollment file; a failure is only worth a line."""
        try:
            self.file.path.unlink(missing_ok=True)
        except OSError as exc:
            self.say(
                f"training-agent: could not delete {self.file.path} ({exc.strerror}); "
                "delete it yourself (its token is used up)"
            )

    def _token(self) -> str:
        token = self.file.token or ""
        if not TOKEN_RE.fullmatch(token):
            raise CredentialError(
                f"{self.file.path.name} holds no valid enrollment token; {DOWNLOAD_AGAIN}"
            )
        return token

    def _address(self, given_url: str | None) -> str:
        if given_url:
            return self.check_url(given_url, warn=self.say)
        if not self.file.backend_url:
            raise ConfigError(f"{self.file.path.name} names no backend; {DOWNLOAD_AGAIN}")
        clear: list[str] = []
        url = self.check_url(self.file.backend_url, warn=clear.append)
        if clear:
            self._confirm_clear_text(url)
        return url

    def _confirm_clear_text(self, url: str) -> None:
        risk = (
            f"{self.file.path.name} points at {url}, which is not encrypted (http://): the "
            "enrollment token and the API key would cross the network in clear"
        )
        if self.ask is None:
            raise ConfigError(
                f"{risk}; run the installer in a terminal to confirm, or give the platform's "
                "https:// address with --backend-url"
            )
        if self.ask(f"{risk}. Connect anyway? [y/N] ").strip().lower() not in ("y", "yes"):
            raise ConfigError("stopped before connecting; nothing was installed")

    def _other_address(self, reason: str) -> str:
        if self.ask is None:
            raise ConfigError(
                f"{reason}; check your network and proxy settings, or give the platform's "
                "address with --backend-url"
            )
        typed = self.ask(f"{reason}. The platform's address to use instead (empty: stop): ")
        if not typed.strip():
            raise ConfigError("stopped before enrolling; nothing was installed")
        return self.check_url(typed, warn=self.say)


def _refusal(url: str, exc: TrainingAgentError, token: str) -> TrainingAgentError:
    """One sentence for a backend that would not enroll this machine."""
    if not isinstance(exc, HttpStatusError):
        return ConfigError(f"{url} gave an unexpected answer to the enrollment: {exc}")
    sentence = _server_sentence(exc).replace(token, "[redacted]")
    if exc.status == 401:
        return CredentialError(f"{url} refused the enrollment: {sentence}")
    if exc.code == "AGENT_REVOKED":
        return CredentialError(
            f"{url} refused the enrollment: this machine's agent was revoked on the Training "
            "Agent page; enable it there, or uninstall with --purge and download again"
        )
    if exc.status == 429:
        return ConfigError(f"{url} refused the enrollment: {sentence}")
    return ConfigError(
        f"{url} does not enroll agents ({exc.status}); if the enrollment file was edited to "
        f"point elsewhere, {DOWNLOAD_AGAIN}"
    )


def _server_sentence(exc: HttpStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])[:300]
    return str(exc)
