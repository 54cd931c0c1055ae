"""Uploads a finished job's outputs, resumably and verified (the ``artifacts`` extension).

One upload, from its row in the outbox (``reporting.artifact_rows``) to settled:

1. **hash**: read the output once (a directory as its tar archive, ``reporting.archive``)
   for its size, SHA-256 and fingerprint, in a worker thread;
2. **declare**: ``POST …/artifacts`` with name, kind, size and SHA-256; the server answers
   the artifact id and how many bytes it already holds (idempotent: after an outage, a
   crash or a restart this is where the upload resumes, at the *server's* offset);
3. **send**: ``PUT …/artifacts/{id}?offset=N``, one chunk (``CHUNK_BYTES``) at a time, the
   confirmed offset stored after each, so at most the chunk in flight is sent twice;
   ``409 ARTIFACT_GAP`` moves to the server's ``expected_offset``; the server verifies
   the whole when the last byte arrives.

Failures: no answer, 408, 429 and 5xx (507: the backend's disk is full) are retried
with ``retry.ARTIFACT`` for as long as it takes; nothing is lost meanwhile. An output
that changes while it uploads (its fingerprint moves, a file shrinks) is read again
once, then given up; ``422 ARTIFACT_CORRUPT`` starts the upload over once, then gives
up. A refused upload (a quota, a bad name) is given up at once. Given up means: a job
log line naming the local path, the error next to the output in the terminal status,
and the job still ``completed``. While a job's uploads run, its heartbeat keeps the
lease alive. The job's terminal status waits until every upload of the job settled
(``reporting.uploader``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from training_agent.api import BackendClient
from training_agent.errors import ApiError, ConflictError, HttpStatusError, StateError
from training_agent.reporting.archive import OutputChanged, Source, open_source, sha256_of
from training_agent.reporting.artifact_rows import ArtifactRow, ArtifactRows, ArtifactState
from training_agent.reporting.artifact_steps import Corrupt, Gap, GiveUp, JobGone, Step
from training_agent.reporting.outbox import Outbox
from training_agent.retry import ARTIFACT, WAIT_ADVICE, RetryPolicy, call_with_retry, is_job_gone
from training_agent.status.uploads import UploadBoard

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

CHUNK_BYTES = 8 * 1024 * 1024  # the protocol's default chunk
FINGERPRINT_EVERY_S = 2.0  # how often a running upload checks that its output is unchanged
MAX_REREADS = 1
MAX_RESTARTS = 1


class ArtifactUploader:
    """Works through the pending uploads; ``run`` loops until cancelled."""

    def __init__(
        self,
        *,
        outbox: Outbox,
        client: BackendClient,
        features: Callable[[], frozenset[str] | None],
        board: UploadBoard | None = None,
        on_settled: Callable[[str], None] = lambda _job_id: None,
        policy: RetryPolicy = ARTIFACT,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
        chunk_bytes: int = CHUNK_BYTES,
        interval_s: float = 5.0,
        heartbeat_interval_s: float | None = 10.0,
    ) -> None:
        """``on_settled(job_id)`` is told when the job's last upload settled (its
        terminal status may go); ``heartbeat_interval_s`` None sends no heartbeats."""
        self._outbox = outbox
        self._rows: ArtifactRows = outbox.artifacts
        self._client = client
        self._features = features
        self._board = board or UploadBoard()
        self._on_settled = on_settled
        self._policy = policy
        self._sleep = sleep
        self._rng = rng
        self._clock = clock
        self._checked_at = 0.0  # when the output was last seen unchanged (this session)
        self._chunk_bytes = chunk_bytes
        self._interval_s = interval_s
        self._heartbeat_interval_s = heartbeat_interval_s
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New uploads were planned."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.drain_once()
            except StateError as exc:
                log.error("artifact uploads paused: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval_s)

    async def drain_once(self) -> bool:
        """Take every pending upload as far as it goes; True when none is left."""
        features = self._features()
        if features is None:
            return not self._rows.pending()  # nothing goes out before the features are known
        tokens = dict(self._outbox.unfinished_jobs())
        for row in self._rows.pending():
            token = tokens.get(row.job_id)
            if token is None:
                continue
            if "artifacts" not in features:
                self._give_up(row, "the backend no longer takes artifacts")
            else:
                async with self._keep_alive(row.job_id, token, features):
                    await self._upload(row, token)
            if not self._rows.unsettled(row.job_id):
                self._on_settled(row.job_id)
        return not self._rows.pending()

    # -- one upload ---------------------------------------------------------------------

    async def _upload(self, row: ArtifactRow, token: str) -> None:
        self._board.planned(
            row.seq, job_id=row.job_id, name=row.name, kind=row.kind.value, path=str(row.path)
        )
        try:
            await self._sessions(row.seq, token)
        except GiveUp as exc:
            self._give_up(row, str(exc))
        except JobGone as exc:
            for other in self._rows.of_job(row.job_id):
                self._give_up(other, str(exc))
        except (asyncio.CancelledError, StateError):
            raise  # stopping, or the outbox failed: the upload stays pending
        except Exception as exc:  # a bug here must not stop every later upload
            log.exception("job %s: the upload of %s failed in the agent", row.job_id, row.name)
            self._give_up(row, f"internal error in the agent: {exc!r}")

    async def _sessions(self, seq: int, token: str) -> None:
        """Hash, declare and send until the upload settles (or gives up by raising)."""
        source: Source | None = None
        try:
            while (row := self._rows.get(seq)) is not None and row.state is ArtifactState.PENDING:
                if source is None:
                    source = await self._open(row)
                if row.sha256 is None or row.fingerprint != source.fingerprint:
                    if row.sha256 is not None:  # changed since it was hashed (before a restart)
                        self._changed(row, "changed after it was read")
                    else:
                        await self._hash(row, source)
                    source.close()
                    source = None
                    continue
                step = await self._send(row, token, source)
                if step is Step.COMPLETE:
                    self._rows.complete(seq)
                    self._board.settled(seq)
                    log.info("job %s: uploaded %s (%d bytes)", row.job_id, row.name, row.size_bytes)
                    return
                if step is Step.GONE:
                    return
                source.close()
                source = None
                if step is Step.CHANGED:
                    self._changed(row, "changed while it was uploading")
                else:
                    self._corrupt(row)
        finally:
            if source is not None:
                source.close()

    async def _open(self, row: ArtifactRow) -> Source:
        try:
            return await asyncio.to_thread(open_source, row.path, is_dir=row.is_dir)
        except OSError as exc:
            raise GiveUp(f"it cannot be read ({exc.strerror or exc})") from exc

    async def _hash(self, row: ArtifactRow, source: Source) -> None:
        loop = asyncio.get_running_loop()

        def progress(done: int) -> None:
            loop.call_soon_threadsafe(
                lambda: self._board.hashing(row.seq, done=done, size=source.size)
            )

        stop = threading.Event()
        try:
            sha256 = await asyncio.to_thread(sha256_of, source, progress, stop)
            unchanged = await asyncio.to_thread(source.current_fingerprint) == source.fingerprint
        except OutputChanged:
            sha256, unchanged = "", False
        except OSError as exc:
            raise GiveUp(f"it cannot be read ({exc.strerror or exc})") from exc
        except asyncio.CancelledError:
            stop.set()  # the thread stops within one read; the agent need not wait for it
            raise
        if not unchanged:
            self._changed(row, "changed while it was read")
            return
        if source.skipped:
            log.info(
                "job %s: %s: %d symlinks or special files left out",
                row.job_id,
                row.name,
                source.skipped,
            )
        self._rows.hashed(
            row.seq, size_bytes=source.size, sha256=sha256, fingerprint=source.fingerprint
        )

    async def _send(self, row: ArtifactRow, token: str, source: Source) -> Step:
        """One session: declare, then send chunks from the server's offset to the end."""
        assert row.sha256 is not None and row.size_bytes is not None
        size = row.size_bytes
        declared = await self._call(
            row,
            lambda: self._client.declare_artifact(
                row.job_id,
                token,
                name=row.name,
                kind=row.kind.value,
                size_bytes=size,
                sha256=row.sha256 or "",
            ),
        )
        offset = min(declared.offset, size)
        if not self._rows.declared(row.seq, artifact_id=declared.artifact_id, offset=offset):
            return Step.GONE
        if declared.complete or offset >= size:
            return Step.COMPLETE
        self._board.sent(row.seq, offset=offset, size=size)
        chunk_bytes = min(self._chunk_bytes, declared.max_chunk_bytes or self._chunk_bytes)
        self._checked_at = self._clock()
        while offset < size:
            length = min(chunk_bytes, size - offset)
            chunk = await self._read_chunk(
                row, source, offset, length, last=offset + length >= size
            )
            if chunk is None:
                return Step.CHANGED
            sent = await self._put_chunk(row, token, declared.artifact_id, offset, chunk, size)
            if isinstance(sent, Step):
                return sent
            offset = sent
            if not self._rows.advanced(row.seq, offset=offset):
                return Step.GONE
            self._board.sent(row.seq, offset=offset, size=size)
        return Step.COMPLETE

    async def _read_chunk(
        self, row: ArtifactRow, source: Source, offset: int, length: int, *, last: bool
    ) -> bytes | None:
        """The chunk at ``offset``; None when the output changed since it was hashed."""
        if last or self._clock() - self._checked_at >= FINGERPRINT_EVERY_S:
            if await asyncio.to_thread(source.current_fingerprint) != row.fingerprint:
                return None
            self._checked_at = self._clock()
        try:
            return await asyncio.to_thread(source.read, offset, length)
        except OutputChanged:
            return None
        except OSError as exc:
            raise GiveUp(f"it cannot be read ({exc.strerror or exc})") from exc

    async def _put_chunk(
        self, row: ArtifactRow, token: str, artifact_id: str, offset: int, chunk: bytes, size: int
    ) -> int | Step:
        """Send one chunk; the offset to go on from (the backend's word wins), or a step."""
        try:
            stored = await self._call(
                row,
                lambda: self._client.put_artifact_chunk(
                    row.job_id, token, artifact_id, offset=offset, chunk=chunk
                ),
            )
        except Corrupt:
            return Step.CORRUPT
        except Gap as gap:
            if gap.expected == offset:
                raise GiveUp(f"the backend answered a gap at its own offset ({gap})") from None
            return gap.expected
        if stored.complete:
            return size
        end = offset + len(chunk)
        if stored.offset is not None and offset < stored.offset <= size:
            return stored.offset
        return end

    async def _call(self, row: ArtifactRow, call: Callable[[], Awaitable[T]]) -> T:
        """``call`` with ``retry.ARTIFACT``; what a final failure means, as an exception."""
        try:
            return await call_with_retry(
                call,
                policy=self._policy,
                sleep=self._sleep,
                rng=self._rng,
                clock=self._clock,
                describe=f"upload of {row.name} (job {row.job_id})",
                advice=WAIT_ADVICE,
            )
        except ConflictError as exc:
            if exc.code == "ARTIFACT_GAP":
                raise Gap.from_error(exc, row) from exc
            raise self._final(exc) from exc
        except HttpStatusError as exc:
            if exc.code in ("ARTIFACT_CORRUPT", "ARTIFACT_NOT_FOUND"):
                raise Corrupt(str(exc)) from exc
            raise self._final(exc) from exc
        except ApiError as exc:  # an answer this agent cannot read
            raise GiveUp(str(exc)) from exc

    @staticmethod
    def _final(exc: HttpStatusError) -> Exception:
        if is_job_gone(exc):
            return JobGone(f"the backend no longer accepts this job's reports ({exc})")
        return GiveUp(f"the backend refused it: {exc}")

    # -- what an upload that did not go through means -----------------------------------

    def _changed(self, row: ArtifactRow, how: str) -> None:
        if row.rereads >= MAX_REREADS:
            raise GiveUp(
                f"it {how} even after it was read a second time (its SHA-256 no longer "
                "matches); make sure nothing writes to it after the job declares it"
            )
        log.warning("job %s: %s %s; reading it again", row.job_id, row.path, how)
        self._rows.reread(row.seq)
        self._board.waiting(row.seq)

    def _corrupt(self, row: ArtifactRow) -> None:
        if row.restarts >= MAX_RESTARTS:
            raise GiveUp(
                "the backend found the uploaded bytes corrupt twice (their SHA-256 did not "
                "match); check the network path to the backend"
            )
        log.warning("job %s: the backend found %s corrupt; starting over", row.job_id, row.name)
        self._rows.restart(row.seq)
        self._board.waiting(row.seq)

    def _give_up(self, row: ArtifactRow, reason: str) -> None:
        notice = (
            f"[training-agent] warning: the output {row.path} was not uploaded: {reason}. "
            f"It stays on this machine at {row.path}"
        )
        if self._rows.fail(row.seq, error=reason, notice=notice):
            log.warning("job %s: %s not uploaded: %s", row.job_id, row.path, reason)
        self._board.settled(row.seq, error=reason)

    @contextlib.asynccontextmanager
    async def _keep_alive(
        self, job_id: str, token: str, features: frozenset[str]
    ) -> AsyncIterator[None]:
        """Heartbeats for the job while its outputs upload, so its lease does not run out
        while a big model is hashed."""
        if self._heartbeat_interval_s is None or "heartbeat" not in features:
            yield
            return
        task = asyncio.create_task(self._heartbeats(job_id, token, self._heartbeat_interval_s))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _heartbeats(self, job_id: str, token: str, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self._client.heartbeat(job_id, token)
            except ApiError as exc:
                log.debug("job %s: heartbeat during the upload failed: %s", job_id, exc)
