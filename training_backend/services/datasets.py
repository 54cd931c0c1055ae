"""Datasets held by the backend: stored once, linked to jobs, streamed to their agents.

The bytes live in the datasets directory under a name the backend makes up
(``<uuid>.bin``); the name the user gave is kept for display and the download's
``Content-Disposition`` only, so nothing from a request ever names a file.

    upload = DatasetUpload(directory, max_bytes=...)
    upload.write(chunk); ...                    # hashes and counts while writing
    dataset = upload.save(db, user_id=..., filename=..., now=...)
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

from platformdirs import user_data_dir
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from training_backend.db.models import Dataset, TrainingJob
from training_backend.errors import ApiError
from training_backend.services.quotas import check_dataset_quota, lock_user
from training_backend.settings import APP_NAME, BackendSettings

MAX_FILENAME_CHARS = 255
DEFAULT_FILENAME = "dataset"
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\"\\/]")


def backend_data_dir(settings: BackendSettings) -> Path:
    """The folder of the SQLite file, else the user data directory (PostgreSQL)."""
    url = make_url(settings.database_url)
    database = url.database
    is_file = bool(database) and database != ":memory:" and not str(database).startswith("file:")
    if url.get_backend_name() == "sqlite" and database and is_file:
        return Path(database).expanduser().resolve().parent
    return Path(user_data_dir(APP_NAME, appauthor=False))


def datasets_dir(settings: BackendSettings) -> Path:
    """Where datasets are kept: the setting, else beside the SQLite file, else the data dir."""
    if settings.datasets_dir is not None:
        return settings.datasets_dir.expanduser()
    return backend_data_dir(settings) / "datasets"


def clean_filename(name: str | None) -> str:
    """A display name from what the client sent: last path part, no control characters.

    >>> clean_filename("../../etc/passwd\\n")
    'passwd'
    """
    text = unicodedata.normalize("NFC", name or "")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = _UNSAFE.sub("", text).strip().lstrip(".")
    return text[:MAX_FILENAME_CHARS] or DEFAULT_FILENAME


def dataset_too_large(max_bytes: int) -> ApiError:
    """413 for an upload over the limit, saying what the limit is."""
    message = (
        f"Dataset is larger than the backend accepts ({max_bytes} bytes); "
        "raise TRAINING_BACKEND_MAX_DATASET_BYTES or upload a smaller file"
    )
    return ApiError(413, "PAYLOAD_TOO_LARGE", message)


@dataclass(frozen=True)
class DatasetQuota:
    """How many datasets, and bytes of them, one user may keep (0: no limit)."""

    max_count: int
    max_bytes: int

    @classmethod
    def of(cls, settings: BackendSettings) -> DatasetQuota:
        """The quota the settings give."""
        return cls(settings.max_datasets_per_user, settings.max_dataset_storage_bytes_per_user)

    def check(self, db: Session, *, user_id: str, adding_bytes: int) -> None:
        """409 ``QUOTA_EXCEEDED`` unless ``user_id`` may add ``adding_bytes`` more."""
        check_dataset_quota(
            db,
            user_id=user_id,
            adding_bytes=adding_bytes,
            max_count=self.max_count,
            max_bytes=self.max_bytes,
        )


class DatasetUpload:
    """A dataset being received: written to a temporary file, hashed and counted.

    Used as a context manager, it removes the temporary file unless ``save`` kept it.
    """

    def __init__(self, directory: Path, *, max_bytes: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.max_bytes = max_bytes
        self.storage_key = f"{uuid.uuid4().hex}.bin"
        self._partial = directory / f".{self.storage_key}.partial"
        self._file: BinaryIO = self._partial.open("xb")
        self._sha256 = hashlib.sha256()
        self.size_bytes = 0

    def write(self, chunk: bytes) -> None:
        """Append ``chunk`` (413 once the total passes ``max_bytes``)."""
        self.size_bytes += len(chunk)
        if self.size_bytes > self.max_bytes:
            raise dataset_too_large(self.max_bytes)
        self._sha256.update(chunk)
        self._file.write(chunk)

    def save(
        self,
        db: Session,
        *,
        user_id: str,
        filename: str | None,
        now: datetime,
        quota: DatasetQuota | None = None,
    ) -> Dataset:
        """Keep the file under its storage name and record it for ``user_id``.

        With ``quota``, checked under the user's lock: 409 ``QUOTA_EXCEEDED`` (and the
        file is dropped) when the user may not keep one more dataset of this size.
        """
        if self.size_bytes == 0:
            raise ApiError(400, "EMPTY_DATASET", "The dataset is empty: send the file as the body")
        if quota is not None:
            lock_user(db, user_id=user_id)
            quota.check(db, user_id=user_id, adding_bytes=self.size_bytes)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._partial.replace(self.directory / self.storage_key)
        dataset = Dataset(
            user_id=user_id,
            filename=clean_filename(filename),
            sha256=self._sha256.hexdigest(),
            size_bytes=self.size_bytes,
            storage_key=self.storage_key,
            created_at=now,
        )
        db.add(dataset)
        try:
            db.commit()
        except Exception:
            (self.directory / self.storage_key).unlink(missing_ok=True)
            raise
        return dataset

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._file.close()
        self._partial.unlink(missing_ok=True)


def store_file(
    db: Session, *, path: Path, directory: Path, max_bytes: int, user_id: str, now: datetime
) -> Dataset:
    """Store the local file ``path`` as a dataset of ``user_id`` (the CLI's upload)."""
    with DatasetUpload(directory, max_bytes=max_bytes) as upload, path.open("rb") as source:
        while chunk := source.read(1024 * 1024):
            upload.write(chunk)
        return upload.save(db, user_id=user_id, filename=path.name, now=now)


def get_owned_dataset(db: Session, *, dataset_id: str, user_id: str) -> Dataset:
    """Dataset ``dataset_id`` if ``user_id`` owns it; 404 otherwise."""
    dataset = db.get(Dataset, dataset_id)
    if dataset is None or dataset.user_id != user_id:
        raise ApiError(404, "DATASET_NOT_FOUND", f"No dataset with id '{dataset_id}'")
    return dataset


def dataset_of_job(db: Session, *, job: TrainingJob, directory: Path) -> tuple[Dataset, Path]:
    """The dataset linked to ``job`` and its file (404 ``DATASET_NOT_FOUND`` if none)."""
    dataset = None if job.dataset_id is None else db.get(Dataset, job.dataset_id)
    if dataset is None:
        message = "This job has no dataset stored on the backend; use its dataset_path"
        raise ApiError(404, "DATASET_NOT_FOUND", message)
    path = directory / dataset.storage_key
    if not path.is_file():
        message = "The job's dataset file is missing on the backend; upload it again"
        raise ApiError(404, "DATASET_NOT_FOUND", message)
    return dataset, path
