"""Fixtures of the artifact tests: a running job, and the app's store behind a spy."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI

from tests.backend.artifacts.support import SpyStore
from tests.backend.support import MakeRunningJob
from tests.support.s3 import S3Server, start_s3_server
from training_backend.db.models import TrainingJob
from training_backend.services.artifact_store.s3 import S3Store


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


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One S3-compatible server process for the whole run (it takes seconds to start)."""
    with start_s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def s3_store(s3_server: S3Server) -> S3Store:
    """A store in a new bucket of its own, under the prefix ``artifacts``."""
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    s3_server.create_bucket(bucket)
    return S3Store(bucket, "artifacts", s3_server.client())
