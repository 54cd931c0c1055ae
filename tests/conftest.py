"""Fixtures shared by every suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.backend import BackendProcess, start_backend


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[BackendProcess]:
    """A real ``training-backend serve`` process on a fresh SQLite database."""
    with start_backend(tmp_path / "backend") as process:
        yield process
