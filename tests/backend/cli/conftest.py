"""Fixtures of the command-line tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A SQLite database for in-process commands (``--database-url``)."""
    return f"sqlite:///{tmp_path / 'cli.sqlite3'}"
