"""Fixtures of the artifact tests: a running job, and the app's store behind a spy."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi import FastAPI

from tests.backend.artifacts.support import SpyStore
from tests.backend.support import MakeRunningJob
from training_backend.db.models import TrainingJob


@pytest.fixture
def running(make_running_job: MakeRunningJob) -> tuple[TrainingJob, str]:
    """A claimed job and its token."""
    return make_running_job()


@pytest.fixture
def spy(app: FastAPI) -> SpyStore:
    """The app's store, wrapped so a test sees every write and can make them fail."""
    store = SpyStore(app.state.artifact_store)
    app.state.artifact_store = store
    return store


@pytest.fixture
def configure(app: FastAPI) -> Callable[..., None]:
    """``configure(artifact_quota_gb=...)``: change the running app's settings."""

    def change(**values: object) -> None:
        app.state.settings = app.state.settings.model_copy(update=values)

    return change
