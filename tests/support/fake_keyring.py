"""In-memory keyring backends for unit tests of one layer (no D-Bus here;
``secret_service`` drives the real Secret Service)."""

from __future__ import annotations

import keyring.errors
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail


class MemoryKeyring(KeyringBackend):
    priority = 1

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.items: dict[tuple[str, str], str] = {}

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def delete_password(self, service: str, username: str) -> None:
        del self.items[(service, username)]


class LockedKeyring(MemoryKeyring):
    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.KeyringLocked("Prompt dismissed")


def no_keyring() -> KeyringBackend:
    """keyring's own "nothing usable here" backend, as on a headless machine."""
    backend: KeyringBackend = fail.Keyring()  # type: ignore[no-untyped-call]
    return backend


def use_backend(monkeypatch: pytest.MonkeyPatch, backend: KeyringBackend) -> None:
    monkeypatch.setattr("keyring.core._keyring_backend", backend)
