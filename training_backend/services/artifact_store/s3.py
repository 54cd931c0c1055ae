"""Artifacts in an S3-compatible bucket, under ``s3://bucket/prefix``.

An upload is an S3 multipart upload, begun at its first chunk. S3 wants every part but
the last to be at least 5 MiB, and an agent may send smaller chunks (or a resent chunk
may leave a short tail), so a chunk goes out as a part once the bytes waiting make 5 MiB;
until then they wait in a small ``<key>.tail`` object. With the default 8 MiB chunks
every chunk is a part of its own and no tail is ever written. The multipart upload's id,
the parts sent and the bytes in them are the upload state the backend keeps with the
artifact's row, so any backend process sharing the bucket and the database goes on with
it. An artifact that fits in one chunk is written with one ``PutObject``.

Credentials, region and endpoint come from boto3's usual sources (``AWS_ACCESS_KEY_ID``,
``AWS_ENDPOINT_URL``, ``~/.aws/config``…), never from the backend's settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from training_backend.services.artifact_store import UploadState
from training_backend.services.artifact_store.errors import StoreFull, StoreUnavailable

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

#: S3's smallest part but the last one.
MIN_PART_BYTES = 5 * 1024 * 1024
READ_BLOCK_BYTES = 1024 * 1024
_TAIL = ".tail"


def _failure(exc: Exception, what: str, location: str) -> StoreFull | StoreUnavailable:
    code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
    if code in ("QuotaExceeded", "InsufficientStorage", "XMinioStorageFull"):
        return StoreFull(f"The artifact bucket {location} is full; the upload goes on later")
    reason = code or type(exc).__name__
    return StoreUnavailable(f"The backend could not {what} in {location} ({reason}): try again")


class S3Store:
    """An ``ArtifactStore`` in ``bucket`` under ``prefix`` (no trailing slash)."""

    def __init__(self, bucket: str, prefix: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._client = client

    @classmethod
    def from_url(cls, url: str) -> S3Store:
        """The store of ``s3://bucket/prefix`` (the prefix may be empty)."""
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        return cls(bucket, prefix)

    @property
    def location(self) -> str:
        """``s3://bucket/prefix``."""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    @property
    def client(self) -> S3Client:
        """The boto3 client, made on first use (clients are safe to share across threads)."""
        if self._client is None:
            config = Config(retries={"mode": "standard", "max_attempts": 3})
            self._client = boto3.client("s3", config=config)
        return self._client

    def _object(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _key_of(self, name: str) -> str:
        return name.removeprefix(f"{self.prefix}/" if self.prefix else "").removesuffix(_TAIL)

    def write(
        self, key: str, state: UploadState, *, offset: int, data: bytes | memoryview, last: bool
    ) -> UploadState:
        """Send ``data`` as a part once 5 MiB are waiting (or it is the last), else keep it
        in the tail object."""
        try:
            return self._write(key, dict(state), offset=offset, data=data, last=last)
        except (BotoCoreError, ClientError) as exc:
            raise _failure(exc, "store an artifact chunk", self.location) from exc

    def _write(
        self, key: str, state: dict[str, Any], *, offset: int, data: bytes | memoryview, last: bool
    ) -> UploadState:
        part_bytes = int(state.get("part_bytes", 0))
        waiting = self._tail(key, offset - part_bytes) + data
        if not last and len(waiting) < MIN_PART_BYTES:
            self.client.put_object(Bucket=self.bucket, Key=self._object(key + _TAIL), Body=waiting)
            return state
        if last and "upload_id" not in state:
            self.client.put_object(Bucket=self.bucket, Key=self._object(key), Body=waiting)
            state["single"] = True
        else:
            state = self._upload_part(key, state, waiting)
        if offset > part_bytes:  # the waiting bytes are stored for good now
            self.client.delete_object(Bucket=self.bucket, Key=self._object(key + _TAIL))
        return state

    def _upload_part(self, key: str, state: dict[str, Any], data: bytes) -> UploadState:
        if "upload_id" not in state:
            begun = self.client.create_multipart_upload(Bucket=self.bucket, Key=self._object(key))
            state["upload_id"] = begun["UploadId"]
        number = int(state.get("parts", 0)) + 1
        self.client.upload_part(
            Bucket=self.bucket,
            Key=self._object(key),
            UploadId=state["upload_id"],
            PartNumber=number,
            Body=data,
        )
        part_bytes = int(state.get("part_bytes", 0)) + len(data)
        return state | {"parts": number, "part_bytes": part_bytes}

    def _tail(self, key: str, length: int) -> bytes:
        if length == 0:
            return b""
        answer = self.client.get_object(Bucket=self.bucket, Key=self._object(key + _TAIL))
        tail = answer["Body"].read()
        if len(tail) < length:
            raise StoreUnavailable(f"artifact tail {key} is shorter than recorded")
        return tail[:length]  # a longer one was written by a chunk whose row update lost

    def finish(self, key: str, state: UploadState) -> None:
        """Complete the multipart upload (the single object needs nothing; an empty
        artifact is written here)."""
        try:
            if "upload_id" in state:
                self._complete(key, str(state["upload_id"]))
            elif not state.get("single"):
                self.client.put_object(Bucket=self.bucket, Key=self._object(key), Body=b"")
        except (BotoCoreError, ClientError) as exc:
            raise _failure(exc, "finish an artifact", self.location) from exc

    def _complete(self, key: str, upload_id: str) -> None:
        name = self._object(key)
        try:
            parts: list[CompletedPartTypeDef] = []
            pages = self.client.get_paginator("list_parts")
            for page in pages.paginate(Bucket=self.bucket, Key=name, UploadId=upload_id):
                parts += [
                    {"PartNumber": part["PartNumber"], "ETag": part["ETag"]}
                    for part in page.get("Parts", [])
                ]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                raise
            self.client.head_object(Bucket=self.bucket, Key=name)  # completed before
            return
        self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=name, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )

    def read(self, key: str, *, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``start`` to ``end`` (exclusive), fetched with one ranged ``GetObject``."""
        if end <= start:
            return
        try:
            answer = self.client.get_object(
                Bucket=self.bucket, Key=self._object(key), Range=f"bytes={start}-{end - 1}"
            )
            yield from answer["Body"].iter_chunks(READ_BLOCK_BYTES)
        except (BotoCoreError, ClientError) as exc:
            raise _failure(exc, "read an artifact", self.location) from exc

    def discard(self, key: str) -> None:
        """Delete the object and its tail, and abort its unfinished multipart uploads."""
        name = self._object(key)
        try:
            for each in (name, self._object(key + _TAIL)):
                self.client.delete_object(Bucket=self.bucket, Key=each)
            for upload in self._uploads(prefix=name):
                if upload["Key"] == name:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=name, UploadId=upload["UploadId"]
                    )
        except (BotoCoreError, ClientError) as exc:
            raise _failure(exc, "delete an artifact", self.location) from exc

    def _uploads(self, *, prefix: str) -> Iterator[dict[str, Any]]:
        pages = self.client.get_paginator("list_multipart_uploads")
        for page in pages.paginate(Bucket=self.bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                yield dict(upload)

    def keys(self) -> Iterator[str]:
        """Keys of every object, tail and unfinished multipart upload under the prefix."""
        prefix = f"{self.prefix}/" if self.prefix else ""
        seen: set[str] = set()
        try:
            pages = self.client.get_paginator("list_objects_v2")
            names = [
                item["Key"]
                for page in pages.paginate(Bucket=self.bucket, Prefix=prefix)
                for item in page.get("Contents", [])
            ]
            names += [upload["Key"] for upload in self._uploads(prefix=prefix)]
        except (BotoCoreError, ClientError) as exc:
            raise _failure(exc, "list artifacts", self.location) from exc
        for name in names:
            key = self._key_of(name)
            if key and "/" not in key and key not in seen:
                seen.add(key)
                yield key

    def free_bytes(self) -> int | None:
        """Unknown: a bucket has no free space to ask about."""
        return None
