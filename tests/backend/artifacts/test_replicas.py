"""Two backend processes on one database and one S3 bucket share every upload: chunks
sent to either one make one artifact, and either one serves it."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import httpx

from tests.backend.artifacts.support import claimed_job, declaration
from tests.support.backend import start_backend
from tests.support.e2e import make_user_and_key, submit
from tests.support.s3 import S3Server

MIB = 1024 * 1024


def test_replicas_sharing_a_bucket_continue_each_others_uploads(
    tmp_path: Path, s3_server: S3Server
) -> None:
    bucket = f"replicas-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(bucket)
    env = s3_server.env() | {"TRAINING_BACKEND_ARTIFACTS_URL": f"s3://{bucket}/shared"}
    database = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    content = os.urandom(20 * MIB + 3)
    with (
        start_backend(tmp_path / "a", database_url=database, env=env) as first,
        start_backend(tmp_path / "b", database_url=database, env=env) as second,
    ):
        key = make_user_and_key(first, "owner")
        job_id = submit(first, tmp_path, "owner", {"type": "command", "command": ["true"]})
        token = claimed_job(second.url, key, job_id)
        auth = {"Authorization": f"Bearer {token}"}
        uploads = f"/api/training/local/{job_id}/artifacts"
        declared = httpx.post(f"{first.url}{uploads}", json=declaration(content), headers=auth)
        artifact_id = declared.json()["artifact_id"]
        answer = declared
        for index, offset in enumerate(range(0, len(content), 8 * MIB)):
            replica = (first, second)[index % 2]
            answer = httpx.put(
                f"{replica.url}{uploads}/{artifact_id}",
                params={"offset": offset},
                content=content[offset : offset + 8 * MIB],
                headers=auth,
                timeout=60,
            )
            assert answer.status_code == 200, answer.text
        download = httpx.get(
            f"{first.url}/api/training/jobs/{job_id}/artifacts/{artifact_id}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        listed = s3_server.client().list_objects_v2(Bucket=bucket)

    assert answer.json()["complete"] is True
    assert hashlib.sha256(download.content).hexdigest() == hashlib.sha256(content).hexdigest()
    names = [item["Key"] for item in listed["Contents"]]
    assert len(names) == 1 and names[0].startswith("shared/")  # one object, no tail
