"""A real S3-compatible server process for the artifact store's tests (moto's server mode).

    with start_s3_server(tmp_path) as s3:
        s3.create_bucket("artifacts")
        env = s3.env()          # AWS_* variables pointing a backend process at it
        client = s3.client()    # a boto3 client for the test itself

It speaks the S3 protocol over HTTP on loopback and enforces S3's rules that matter here
(parts of at least 5 MiB but the last). Without moto the test skips, except under
``CI=true``, where it fails: moto is in the ``dev`` extra.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.support.backend import free_port, stop

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

STARTUP_TIMEOUT_S = 60.0
#: Throwaway credentials the test server accepts; no real account is ever involved.
TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test-access-key",
    "AWS_SECRET_ACCESS_KEY": "test-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class S3Server:
    """A running test S3 server at ``url``."""

    url: str

    def env(self) -> dict[str, str]:
        """Environment that points boto3 (in a backend process) at this server."""
        return {**TEST_CREDENTIALS, "AWS_ENDPOINT_URL": self.url}

    def client(self) -> S3Client:
        """A boto3 S3 client of this server."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=TEST_CREDENTIALS["AWS_DEFAULT_REGION"],
        )

    def create_bucket(self, name: str) -> None:
        """Create bucket ``name``."""
        self.client().create_bucket(Bucket=name)


def _require_moto() -> None:
    if importlib.util.find_spec("moto") is not None:
        return
    message = "moto is not installed: scripts/setup dev installs it"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI must run the S3 tests)")
    pytest.skip(message)


@contextmanager
def start_s3_server(tmp_path: Path) -> Iterator[S3Server]:
    """moto's server on a free loopback port, stopped afterwards."""
    _require_moto()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "s3-server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        _wait_ready(process, url, log_path)
        yield S3Server(url)
    finally:
        stop(process)


def _wait_ready(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the S3 test server exited: {log_path.read_text()}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"the S3 test server at {url} did not answer in {STARTUP_TIMEOUT_S:.0f} s")
