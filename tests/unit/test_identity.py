"""The agent id is created once and then stable; invalid files are replaced."""

from __future__ import annotations

from pathlib import Path

from training_agent.identity import (
    AGENT_ID_RE,
    current_platform,
    detect_identity,
    load_or_create_agent_id,
)


def test_created_once_then_stable(tmp_path: Path) -> None:
    path = tmp_path / "state" / "agent_id"
    first = load_or_create_agent_id(path, legacy_path=None)
    assert AGENT_ID_RE.match(first)
    assert load_or_create_agent_id(path, legacy_path=None) == first
    assert path.read_text().strip() == first


def test_invalid_stored_id_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "agent_id"
    path.write_text("# Optional: auto-generated if empty\n")
    agent_id = load_or_create_agent_id(path, legacy_path=None)
    assert AGENT_ID_RE.match(agent_id)
    assert path.read_text().strip() == agent_id


def test_adopts_a_valid_finetunelab_id(tmp_path: Path) -> None:
    legacy = tmp_path / ".finetunelab" / "agent_id"
    legacy.parent.mkdir()
    legacy.write_text("agent_0123456789abcdef\n")
    agent_id = load_or_create_agent_id(tmp_path / "agent_id", legacy_path=legacy)
    assert agent_id == "agent_0123456789abcdef"


def test_two_homes_get_two_ids(tmp_path: Path) -> None:
    one = load_or_create_agent_id(tmp_path / "a" / "agent_id", legacy_path=None)
    two = load_or_create_agent_id(tmp_path / "b" / "agent_id", legacy_path=None)
    assert one != two


def test_identity_headers_values() -> None:
    identity = detect_identity("agent_0123456789abcdef")
    assert identity.platform == current_platform()
    assert identity.platform in {"linux", "darwin", "windows"}
    assert identity.hostname
    assert identity.version
