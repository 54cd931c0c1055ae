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


#: Tests that share one expensive session fixture run in one pytest-xdist worker
#: (``--dist loadgroup``), so it is made once per run: the release tests build the
#: executable with PyInstaller.
_GROUPS = {"release": "release"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        first = item.path.relative_to(tests).parts[0]
        if first in _GROUPS:
            item.add_marker(pytest.mark.xdist_group(_GROUPS[first]))
