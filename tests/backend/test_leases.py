"""Leases: a claim starts one, reports and heartbeats renew it, housekeeping takes back
the jobs whose lease ran out, and a late report with the old token gets LEASE_EXPIRED."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.backend.support import Caller, MakeJob, MakeRunningJob, bearer, reload
from training_backend.db import create_db_engine, create_session_factory, upgrade_database
from training_backend.db.models import TrainingAgent, TrainingJob
from training_backend.db.types import utcnow
from training_backend.housekeeping import FORGET_AGENTS_EVERY, Housekeeping, housekeeping_step
from training_backend.services import agents
from training_backend.services.leases import LOST_CONTACT, expire_leases
from training_backend.services.users import create_user
from training_backend.services.wakeups import Signal, Wakeups
from training_backend.settings import BackendSettings

CLAIM = "/api/training/agent/claim/{}"
LOCAL = "/api/training/local/{}"
RETENTION = timedelta(days=30)


async def test_a_claim_starts_a_lease(
    client: httpx.AsyncClient, caller: Caller, make_job: MakeJob, db: Session
) -> None:
    job = make_job()
    before = utcnow()
    answer = await client.post(CLAIM.format(job.id), headers=caller.headers())

    assert answer.json()["lease_seconds"] == 90
    lease = reload(db, job).lease_expires_at
    assert lease is not None
    assert before + timedelta(seconds=90) <= lease <= utcnow() + timedelta(seconds=90)


async def test_a_report_renews_a_lease_that_is_running_out(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, db: Session
) -> None:
    job, token = make_running_job(lease_expires_at=utcnow() + timedelta(seconds=5))
    answer = await client.put(
        f"{LOCAL.format(job.id)}/metrics", json={"step": 1, "epoch": 0.0}, headers=bearer(token)
    )
    assert answer.status_code == 200
    lease = reload(db, job).lease_expires_at
    assert lease is not None
    assert lease > utcnow() + timedelta(seconds=80)


def expired(make_running_job: MakeRunningJob, **overrides: object) -> tuple[str, str]:
    job, token = make_running_job(lease_expires_at=utcnow() - timedelta(seconds=1), **overrides)
    return job.id, token


def test_an_expired_lease_requeues_while_attempts_remain(
    make_running_job: MakeRunningJob, db: Session
) -> None:
    job_id, _ = expired(make_running_job, attempt=1, max_attempts=2, control="pause")
    result = expire_leases(db, now=utcnow())

    assert result.requeued == [job_id]
    job = reload_job(db, job_id)
    assert (job.status, job.agent_id, job.job_token_hash) == ("pending", None, None)
    assert (job.lease_expires_at, job.control, job.attempt) == (None, None, 1)
    assert result.signals == [Signal.job(job.user_id)]
    assert job.available_at >= job.updated_at - timedelta(seconds=1)  # on offer again now


def reload_job(db: Session, job_id: str) -> TrainingJob:
    db.expire_all()
    return db.get_one(TrainingJob, job_id)


def test_an_expired_lease_fails_the_last_attempt(
    make_running_job: MakeRunningJob, db: Session
) -> None:
    job_id, _ = expired(make_running_job, attempt=1, max_attempts=1)
    result = expire_leases(db, now=utcnow())

    assert result.failed == [job_id]
    job = reload_job(db, job_id)
    assert job.status == "failed"
    assert job.error_message == LOST_CONTACT == "agent lost contact"
    assert job.completed_at is not None


def test_an_expired_lease_with_a_cancel_pending_cancels(
    make_running_job: MakeRunningJob, db: Session
) -> None:
    job_id, _ = expired(make_running_job, attempt=1, max_attempts=3, control="cancel")
    assert expire_leases(db, now=utcnow()).cancelled == [job_id]
    assert reload_job(db, job_id).status == "cancelled"


def test_live_leases_and_finished_jobs_are_left_alone(
    make_running_job: MakeRunningJob, make_job: MakeJob, db: Session
) -> None:
    make_running_job(lease_expires_at=utcnow() + timedelta(seconds=30))
    make_running_job(lease_expires_at=None)  # claimed before leases existed
    make_job(status="completed", lease_expires_at=utcnow() - timedelta(hours=1))
    assert expire_leases(db, now=utcnow()).total == 0


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "status", {"status": "completed"}),
        ("PUT", "metrics", {"step": 3, "epoch": 1.0}),
        ("POST", "logs", {"logs": ["late"]}),
        ("POST", "heartbeat", {}),
        ("GET", "dataset", None),
    ],
)
async def test_a_late_report_with_the_old_token_is_409_lease_expired(
    client: httpx.AsyncClient,
    make_running_job: MakeRunningJob,
    db: Session,
    method: str,
    path: str,
    body: dict[str, object] | None,
) -> None:
    job_id, token = expired(make_running_job, attempt=1, max_attempts=2)
    expire_leases(db, now=utcnow())

    answer = await client.request(
        method, f"{LOCAL.format(job_id)}/{path}", json=body, headers=bearer(token)
    )
    assert answer.status_code == 409
    assert answer.json()["code"] == "LEASE_EXPIRED"
    assert "stop" in answer.json()["error"]


async def test_a_late_batch_of_metrics_is_409_lease_expired(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, db: Session
) -> None:
    job_id, token = expired(make_running_job)
    expire_leases(db, now=utcnow())
    answer = await client.post(
        "/api/training/local/metrics",
        json={"job_id": job_id, "metrics": [{"step": 1, "epoch": 0.0}]},
        headers=bearer(token),
    )
    assert (answer.status_code, answer.json()["code"]) == (409, "LEASE_EXPIRED")


async def test_a_requeued_job_is_claimed_again_with_a_new_token(
    client: httpx.AsyncClient, caller: Caller, make_running_job: MakeRunningJob, db: Session
) -> None:
    job_id, old_token = expired(make_running_job, attempt=1, max_attempts=2)
    expire_leases(db, now=utcnow())

    polled = await client.get("/api/training/agent/poll", headers=caller.headers())
    assert polled.json()["job"]["id"] == job_id
    claimed = await client.post(CLAIM.format(job_id), headers=caller.headers("agent_second0001"))
    assert claimed.status_code == 200
    new_token = claimed.json()["job_token"]
    job = reload_job(db, job_id)
    assert (job.attempt, job.agent_id) == (2, "agent_second0001")
    assert job.error_message is None

    fresh = await client.post(f"{LOCAL.format(job_id)}/heartbeat", headers=bearer(new_token))
    stale = await client.post(f"{LOCAL.format(job_id)}/heartbeat", headers=bearer(old_token))
    assert fresh.status_code == 200
    assert stale.json()["code"] == "LEASE_EXPIRED"


def test_housekeeping_forgets_agents_only_when_asked(db: Session, caller: Caller) -> None:
    long_ago = utcnow() - RETENTION - timedelta(days=1)
    db.add(
        TrainingAgent(
            user_id=caller.user.id,
            agent_id="agent_gone00000001",
            last_poll_at=long_ago,
            registered_at=long_ago,
            metadata_={},
        )
    )
    db.commit()
    now = utcnow()
    skipped = housekeeping_step(db, now=now, forget_agents=False, retention=RETENTION)
    done = housekeeping_step(db, now=now, forget_agents=True, retention=RETENTION)
    assert (skipped.agents_forgotten, done.agents_forgotten) == (None, 1)


class RecordingWakeups(Wakeups):
    def __init__(self) -> None:
        super().__init__()
        self.woken: list[str] = []

    def deliver(self, signal: Signal) -> None:
        self.woken.append(signal.user_id)


@pytest.fixture
def session_factory(settings: BackendSettings) -> Iterator[sessionmaker[Session]]:
    """Sessions on the test database without a running app (so no housekeeping of its own)."""
    engine = create_db_engine(settings.database_url)
    upgrade_database(engine)
    try:
        yield create_session_factory(engine)
    finally:
        engine.dispose()


async def test_the_loop_expires_leases_wakes_waiters_and_forgets_agents_every_few_minutes(
    session_factory: sessionmaker[Session], settings: BackendSettings
) -> None:
    with session_factory() as db:
        owner = create_user(db, name="owner")
        job = TrainingJob(
            user_id=owner.id,
            status="running",
            config={},
            agent_id="agent_0123456789",
            job_token_hash="0" * 64,
            attempt=1,
            max_attempts=2,
            lease_expires_at=utcnow() - timedelta(seconds=1),
        )
        db.add(job)
        db.commit()
        job_id, owner_id = job.id, owner.id
    clock = [utcnow()]
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 3:
            raise RuntimeError("enough")
        clock[0] += FORGET_AGENTS_EVERY / 2

    wakeups = RecordingWakeups()
    forgot: list[datetime] = []
    real_forget = agents.forget_stale_agents

    def forget(db: Session, *, now: datetime, retention: timedelta) -> int:
        forgot.append(now)
        return real_forget(db, now=now, retention=retention)

    loop = Housekeeping(session_factory, settings, wakeups, clock=lambda: clock[0], sleep=sleep)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(agents, "forget_stale_agents", forget)
        first = await loop.run_once()
        with pytest.raises(RuntimeError, match="enough"):
            await loop.run()

    assert first.leases.requeued == [job_id]
    assert wakeups.woken == [owner_id]
    assert pauses == [settings.housekeeping_interval_seconds] * 3
    # Passes at 0, 0 (run), +2.5 min, +5 min: agents are looked for at 0 and +5 min.
    assert len(forgot) == 2
    assert forgot[1] - forgot[0] == FORGET_AGENTS_EVERY
