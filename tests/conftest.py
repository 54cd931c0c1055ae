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


#: Tests that share one expensive session or module fixture run in one pytest-xdist
#: worker (``--dist loadgroup``), so it is made once per run: the release tests build
#: the executable with PyInstaller; these modules train or start their fleet once.
_GROUPED_DIRS = {"release"}
_GROUPED_MODULES = {
    "e2e/test_methods.py",
    "e2e/test_faults.py",
    "e2e/test_crash_consistency.py",
    "e2e/test_enrollment.py",
    "browser/test_enrollment_page.py",
    "browser/test_layout.py",
    "fuzz/test_api_schema.py",
    "trainers/test_hf_data.py",
}


@pytest.hookimpl(tryfirst=True)  # before xdist names each test by its group
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        relative = item.path.relative_to(tests)
        if relative.parts[0] in _GROUPED_DIRS:
            item.add_marker(pytest.mark.xdist_group(relative.parts[0]))
        elif relative.as_posix() in _GROUPED_MODULES:
            item.add_marker(pytest.mark.xdist_group(relative.as_posix()))
