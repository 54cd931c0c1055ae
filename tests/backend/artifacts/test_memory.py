"""The server path streams: an upload many chunks long never has more than a few chunks
in memory at once (measured with tracemalloc around the whole upload)."""

from __future__ import annotations

import gc
import os
import tracemalloc

import httpx
import pytest

from tests.backend.artifacts.support import declare, put_chunk
from training_backend.db.models import TrainingJob

MIB = 1024 * 1024
CHUNK = 8 * MIB


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
async def test_a_96_mib_upload_peaks_at_a_few_chunks_of_memory(
    client: httpx.AsyncClient, running: tuple[TrainingJob, str]
) -> None:
    job, token = running
    content = os.urandom(96 * MIB)
    artifact_id = (await declare(client, job.id, token, content)).json()["artifact_id"]
    tracemalloc.start()
    answer = None
    try:
        for offset in range(0, len(content), CHUNK):
            chunk = content[offset : offset + CHUNK]
            answer = await put_chunk(client, job.id, token, artifact_id, offset, chunk)
            del chunk
            gc.collect()  # the test client's request objects form cycles; the server's not
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert answer is not None and answer.json()["complete"] is True
    # The test's slice of each chunk, the request body and the server's copy of it: a few
    # chunks. Holding the file would take 96 MiB.
    assert peak < 4 * CHUNK, f"peak {peak / MIB:.0f} MiB"
