"""The credential store against in-memory keyring backends (one layer: no D-Bus here;
tests/e2e/test_credentials.py runs the real Secret Service and the fail backend)."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest

from tests.support.fake_keyring import LockedKeyring, MemoryKeyring, no_keyring, use_backend
from training_agent.commands.login import read_api_key
from training_agent.credentials import (
    SERVICE,
    CredentialStore,
    check_api_key_shape,
    normalize_backend_url,
)
from training_agent.errors import CredentialError

KEY = "wak_" + "A1b2" * 8
URL = "https://Platform.Example/"


def test_a_working_keyring_holds_the_key_and_no_file_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory = MemoryKeyring()
    use_backend(monkeypatch, memory)
    warnings: list[str] = []
    store = CredentialStore(tmp_path, warn=warnings.append)

    saved = store.save(URL, KEY)

    assert saved.store == "keyring"
    assert memory.items == {(SERVICE, "https://platform.example"): KEY}
    assert not (tmp_path / "credentials.json").exists()
    assert warnings == []
    assert store.load("https://platform.example") == KEY
    assert store.delete(URL) == [f"keyring {memory.name}"]
    assert store.load(URL) is None


def test_no_keyring_falls_back_to_an_owner_only_file_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_backend(monkeypatch, no_keyring())
    warnings: list[str] = []
    store = CredentialStore(tmp_path / "config", warn=warnings.append)

    saved = store.save(URL, KEY)

    assert saved.store == "file"
    assert stat.S_IMODE(store.file.stat().st_mode) == 0o600
    assert len(warnings) == 1 and "no usable OS keyring" in warnings[0]
    assert str(store.file) in warnings[0] and KEY not in warnings[0]
    assert store.load(URL) == KEY
    assert store.delete(URL) == [str(store.file)]
    assert not store.file.exists()


def test_a_locked_keyring_falls_back_and_names_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_backend(monkeypatch, LockedKeyring())
    warnings: list[str] = []
    saved = CredentialStore(tmp_path, warn=warnings.append).save(URL, KEY)
    assert saved.store == "file"
    assert "refused the key (Prompt dismissed)" in warnings[0]


def test_forcing_the_keyring_without_one_is_an_error_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_backend(monkeypatch, no_keyring())
    with pytest.raises(CredentialError, match="--credential-store file"):
        CredentialStore(tmp_path, prefer="keyring").save(URL, KEY)
    assert list(tmp_path.iterdir()) == []


def test_forcing_the_file_skips_a_working_keyring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory = MemoryKeyring()
    use_backend(monkeypatch, memory)
    warnings: list[str] = []
    saved = CredentialStore(tmp_path, prefer="file", warn=warnings.append).save(URL, KEY)
    assert saved.store == "file" and memory.items == {} and warnings == []


def test_saving_to_the_keyring_removes_an_older_copy_from_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    CredentialStore(tmp_path, prefer="file").save(URL, KEY)
    use_backend(monkeypatch, MemoryKeyring())
    CredentialStore(tmp_path).save(URL, KEY)
    assert not (tmp_path / "credentials.json").exists()


def test_keyrings_alt_plaintext_is_never_chosen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class PlaintextKeyring(MemoryKeyring):
        pass

    PlaintextKeyring.__module__ = "keyrings.alt.file"
    alt = PlaintextKeyring()
    use_backend(monkeypatch, alt)
    warnings: list[str] = []
    saved = CredentialStore(tmp_path, warn=warnings.append).save(URL, KEY)
    assert saved.store == "file" and alt.items == {}
    assert "keyrings.alt" in warnings[0]


def test_a_damaged_file_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "credentials.json").write_text("{not json")
    with pytest.raises(CredentialError, match="damaged; delete it"):
        CredentialStore(tmp_path, prefer="file").load(URL)


def test_the_key_shape_is_checked() -> None:
    assert check_api_key_shape(f"  {KEY}\n") == KEY
    for bad in ("", "wak_short", "sk-" + "a" * 32, KEY + "x"):
        with pytest.raises(CredentialError, match="not an API key"):
            check_api_key_shape(bad)


def test_urls_are_normalized_for_the_keyring_user() -> None:
    assert normalize_backend_url("HTTPS://App.Example.com/") == "https://app.example.com"
    assert normalize_backend_url("http://h:8000/base/") == "http://h:8000/base"


def test_without_a_terminal_the_key_must_come_from_stdin() -> None:
    with pytest.raises(CredentialError, match="--api-key-stdin"):
        read_api_key(from_stdin=False, stdin=io.StringIO(""))
    assert read_api_key(from_stdin=True, stdin=io.StringIO(KEY + "\n")) == KEY
