"""Where the API key lives between runs: the OS keyring, or an owner-only file.

This is the only module that imports ``keyring``. The key is stored under the service
``training-agent`` with the normalized backend URL as the user name (macOS Keychain,
Windows Credential Manager, Secret Service on a Linux desktop).

When no usable keyring exists (keyring's ``fail`` backend, no D-Bus session so
``get_keyring()`` raises, a locked collection, a system service) the key goes to
``credentials.json`` in the config directory, mode 0600, and one warning line says why.
keyrings.alt's unencrypted backends are never picked: a plaintext file we did not choose
is worse than the one we do choose and can name.

``CredentialStore(config_dir, prefer="file")`` or ``prefer="keyring"`` forces a store
(``--credential-store``); forcing the keyring when it does not work is an error, not a
silent fallback. Every failure leaves as :class:`CredentialError` with one sentence.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from training_agent.errors import CredentialError

log = logging.getLogger(__name__)

SERVICE = "training-agent"
CREDENTIAL_FILE_NAME = "credentials.json"
API_KEY_RE = re.compile(r"wak_[0-9A-Za-z]{32}")

StorePreference = Literal["auto", "keyring", "file"]
STORE_CHOICES: tuple[StorePreference, ...] = ("auto", "keyring", "file")


def normalize_backend_url(url: str) -> str:
    """The keyring user name for a backend: scheme and host lower-cased, no trailing /."""
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, "", ""))


def check_api_key_shape(value: str) -> str:
    """The key stripped of surrounding whitespace, or ``CredentialError`` if not a key."""
    key = value.strip()
    if not API_KEY_RE.fullmatch(key):
        raise CredentialError(
            "that is not an API key: keys start with 'wak_' followed by 32 letters and "
            "digits; copy it again from the platform's Training Agent page"
        )
    return key


@dataclass(frozen=True)
class Saved:
    """Where :meth:`CredentialStore.save` put the key."""

    store: Literal["keyring", "file"]
    location: str  # the keyring backend's name, or the file's path
    warning: str | None = None  # why the file was used instead of the keyring


class CredentialStore:
    """Saves, loads and deletes API keys, one per backend URL."""

    def __init__(
        self,
        config_dir: Path,
        *,
        prefer: StorePreference = "auto",
        warn: Callable[[str], None] | None = None,
    ) -> None:
        if prefer not in STORE_CHOICES:
            raise CredentialError(f"unknown credential store '{prefer}': use keyring or file")
        self.config_dir = config_dir
        self.prefer = prefer
        self._warn = warn if warn is not None else log.warning
        self._backend: Any = None
        self._backend_problem: str | None = None
        self._probed = False

    @property
    def file(self) -> Path:
        return self.config_dir / CREDENTIAL_FILE_NAME

    # -- the keyring --------------------------------------------------------------------

    def keyring_backend(self) -> tuple[Any, str | None]:
        """The usable keyring backend, or ``None`` and the reason there is none."""
        if not self._probed:
            self._probed = True
            self._backend, self._backend_problem = _find_backend()
        return self._backend, self._backend_problem

    def describe(self) -> str:
        """One line naming the store in use (for ``doctor``)."""
        if self.prefer == "file":
            return f"file {self.file} (chosen with --credential-store file)"
        backend, problem = self.keyring_backend()
        if backend is None:
            return f"file {self.file} ({problem})"
        return f"keyring {_backend_name(backend)}"

    # -- operations -------------------------------------------------------------------

    def save(self, backend_url: str, api_key: str) -> Saved:
        """Store ``api_key`` for ``backend_url``; the keyring when it works, else the file."""
        user = normalize_backend_url(backend_url)
        reason: str
        if self.prefer == "file":
            self._write_file(user, api_key)
            return Saved("file", str(self.file))
        backend, problem = self.keyring_backend()
        if backend is None:
            reason = problem or "no usable OS keyring"
        else:
            try:
                backend.set_password(SERVICE, user, api_key)
            except Exception as exc:  # keyring errors, D-Bus errors, a locked collection
                reason = f"the OS keyring refused the key ({_one_line(exc)})"
            else:
                self._drop_from_file(user)  # one copy only: the keyring's
                return Saved("keyring", _backend_name(backend))
        if self.prefer == "keyring":
            raise CredentialError(
                f"cannot use the OS keyring: {reason}; unlock or set up a keyring, or "
                "use --credential-store file"
            )
        self._write_file(user, api_key)
        warning = (
            f"warning: {reason}; the API key is stored in {self.file} (readable by this user only)"
        )
        self._warn(warning)
        return Saved("file", str(self.file), warning)

    def load(self, backend_url: str) -> str | None:
        """The key stored for ``backend_url`` (keyring first, then the file), or None."""
        user = normalize_backend_url(backend_url)
        if self.prefer != "file":
            backend, _problem = self.keyring_backend()
            if backend is not None:
                try:
                    value = backend.get_password(SERVICE, user)
                except Exception as exc:
                    log.warning("cannot read the OS keyring (%s); trying the file", _one_line(exc))
                else:
                    if value:
                        return str(value)
        if self.prefer == "keyring":
            return None
        return self._read_file().get(user)

    def delete(self, backend_url: str) -> list[str]:
        """Remove the key for ``backend_url`` from every store; where it was removed."""
        user = normalize_backend_url(backend_url)
        removed: list[str] = []
        backend, _problem = self.keyring_backend()
        if backend is not None:
            try:
                if backend.get_password(SERVICE, user) is not None:
                    backend.delete_password(SERVICE, user)
                    removed.append(f"keyring {_backend_name(backend)}")
            except Exception as exc:
                raise CredentialError(
                    f"cannot remove the key from the OS keyring ({_one_line(exc)}); "
                    "unlock the keyring and run the command again"
                ) from exc
        if self._drop_from_file(user):
            removed.append(str(self.file))
        return removed

    # -- the fallback file --------------------------------------------------------------

    def _read_file(self) -> dict[str, str]:
        try:
            text = self.file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise CredentialError(f"cannot read {self.file}: {exc.strerror}") from exc
        try:
            data = json.loads(text)
            keys = data["keys"]
            if not isinstance(keys, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError) as exc:
            raise CredentialError(
                f"{self.file} is damaged; delete it and run 'training-agent login' again"
            ) from exc
        return {str(k): str(v) for k, v in keys.items()}

    def _write_file(self, user: str, api_key: str) -> None:
        keys = self._read_file()
        keys[user] = api_key
        self._store_file(keys)

    def _drop_from_file(self, user: str) -> bool:
        if not self.file.exists():
            return False
        keys = self._read_file()
        if user not in keys:
            return False
        del keys[user]
        if keys:
            self._store_file(keys)
        else:
            self.file.unlink()
        return True

    def _store_file(self, keys: dict[str, str]) -> None:
        """Write the file atomically; it is created 0600 and never exists wider."""
        text = json.dumps({"version": 1, "keys": keys}, indent=2) + "\n"
        try:
            self.config_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            # mkstemp creates the file 0600: the key is never readable by others.
            fd, tmp = tempfile.mkstemp(dir=self.config_dir, prefix=".credentials-")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                os.replace(tmp, self.file)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise CredentialError(
                f"cannot write {self.file}: {exc.strerror}; check that the directory "
                "is yours and writable"
            ) from exc


def _find_backend() -> tuple[Any, str | None]:
    """keyring's chosen backend when it is a real, encrypted store; else why not."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:  # pragma: no cover - a dependency; a broken install
        return None, "the keyring library is not installed"
    try:
        chosen = keyring.get_keyring()
    except Exception as exc:  # e.g. a forced SecretService without D-Bus: RuntimeError
        return None, f"no usable OS keyring ({_one_line(exc)})"
    candidates = list(getattr(chosen, "backends", None) or [chosen])
    for backend in candidates:
        if isinstance(backend, fail.Keyring):
            continue
        if type(backend).__module__.startswith("keyrings.alt"):
            continue  # unencrypted or password-prompting files: never silently
        return backend, None
    if any(type(b).__module__.startswith("keyrings.alt") for b in candidates):
        return None, "only keyrings.alt's file backends are available, not an OS keyring"
    return None, "no usable OS keyring (no Secret Service, e.g. no D-Bus session)"


def _backend_name(backend: Any) -> str:
    name = getattr(backend, "name", None)
    return str(name) if name else type(backend).__qualname__


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
