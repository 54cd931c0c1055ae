"""What each ``training-backend`` command does; ``cli.py`` only parses and reports errors."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from sqlalchemy.orm import Session

from training_backend.body import validate
from training_backend.cli_passwords import choose_password
from training_backend.db import create_db_engine, create_session_factory, upgrade_database
from training_backend.db.models import TrainingAgent
from training_backend.db.types import utcnow
from training_backend.errors import ApiError
from training_backend.schemas.jobs import JobCreate, JobStatusView
from training_backend.services import agents, api_keys, datasets, jobs, users
from training_backend.settings import BackendSettings


def _settings(args: argparse.Namespace, **flags: Any) -> BackendSettings:
    given = {"database_url": args.database_url, **flags}
    return BackendSettings(**{name: value for name, value in given.items() if value is not None})


@contextmanager
def open_database(args: argparse.Namespace) -> Iterator[Session]:
    """A session on the command's database, migrated to the current schema first."""
    engine = create_db_engine(_settings(args).database_url)
    try:
        upgrade_database(engine)
        with create_session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def serve(args: argparse.Namespace) -> int:
    """Run the API with uvicorn until interrupted."""
    import uvicorn

    from training_backend.app import create_app

    settings = _settings(args, host=args.host, port=args.port)
    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=args.log_level)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            app.state.wakeups.close()  # held long polls answer now instead of holding the exit
            super().handle_exit(sig, frame)

    Server(config).run()
    return 0


def users_create(args: argparse.Namespace) -> int:
    """Create a user and print its id (then a generated password, if one was made)."""
    chosen = None
    if not args.no_password:
        chosen = choose_password(name=args.name, from_stdin=args.password_stdin, stdin=sys.stdin)
    with open_database(args) as db:
        password = None if chosen is None else chosen.password
        user = users.create_user(db, name=args.name, password=password)
    print(user.id)
    if chosen is not None:
        print(chosen.note, file=sys.stderr)
        if chosen.generated:
            print(chosen.password)
    return 0


def users_set_password(args: argparse.Namespace) -> int:
    """Replace a user's password (prints a generated one, if one was made)."""
    with open_database(args) as db:
        user = users.get_user_by_name(db, name=args.name)
        chosen = choose_password(name=user.name, from_stdin=args.password_stdin, stdin=sys.stdin)
        users.set_password(db, user_id=user.id, password=chosen.password)
    print(chosen.note, file=sys.stderr)
    if chosen.generated:
        print(chosen.password)
    return 0


def keys_create(args: argparse.Namespace) -> int:
    """Create an API key for a user and print the key (it is not shown again)."""
    with open_database(args) as db:
        user = users.get_user_by_name(db, name=args.user)
        name = args.name or f"cli key {utcnow():%Y-%m-%d %H:%M:%S}"
        scopes = args.scope or ["training"]
        _, key = api_keys.create_api_key(db, user_id=user.id, name=name, scopes=scopes)
    print(key)
    return 0


def _read_job_file(path: str) -> JobCreate:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ApiError(400, "INVALID_JSON", f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "INVALID_REQUEST", f"{path} must hold a JSON object")
    return validate(JobCreate, data)


def _dataset_file(path: str, max_bytes: int) -> Path:
    """The ``--dataset`` file, checked before anything is stored (``ApiError`` otherwise)."""
    file = Path(path)
    try:
        size = file.stat().st_size
    except OSError as exc:
        message = f"dataset file {path} cannot be read ({exc.strerror}): give an existing file"
        raise ApiError(400, "DATASET_NOT_FOUND", message) from exc
    if not file.is_file():
        raise ApiError(400, "INVALID_REQUEST", f"dataset {path} is not a file: give a file")
    if size == 0:
        raise ApiError(400, "EMPTY_DATASET", f"dataset file {path} is empty: give a non-empty file")
    if size > max_bytes:
        message = (
            f"dataset file {path} is {size} bytes, more than the backend accepts "
            f"({max_bytes}): raise TRAINING_BACKEND_MAX_DATASET_BYTES or use a smaller file"
        )
        raise ApiError(413, "PAYLOAD_TOO_LARGE", message)
    return file


def jobs_submit(args: argparse.Namespace) -> int:
    """Queue a job from a JSON file and print its id; ``--dataset`` uploads its dataset."""
    spec = _read_job_file(args.file)
    settings = _settings(args)
    dataset = (
        None if args.dataset is None else _dataset_file(args.dataset, settings.max_dataset_bytes)
    )
    if dataset is not None and spec.dataset_id is not None:
        message = f"{args.file} names a dataset_id and --dataset gives a file: use only one"
        raise ApiError(400, "INVALID_REQUEST", message)
    with open_database(args) as db:
        user = users.get_user_by_name(db, name=args.user)
        fields = spec.model_dump()
        if dataset is not None:
            stored = datasets.store_file(
                db,
                path=dataset,
                directory=datasets.datasets_dir(settings),
                max_bytes=settings.max_dataset_bytes,
                user_id=user.id,
                now=utcnow(),
            )
            fields["dataset_id"] = stored.id
        job = jobs.create_job(db, user_id=user.id, now=utcnow(), **fields)
        print(job.id)
    return 0


def jobs_show(args: argparse.Namespace) -> int:
    """Print a job (``{"job": {...}, "metric_points": n, "log_lines": m}`` with --json)."""
    with open_database(args) as db:
        job = jobs.get_job(db, job_id=args.job_id)
        view = JobStatusView.of(job, now=utcnow()).model_dump(mode="json")
        view["config"] = job.config
        counts = {
            "metric_points": jobs.count_metric_points(db, job_id=job.id),
            "log_lines": jobs.count_log_lines(db, job_id=job.id),
        }
    if args.json:
        print(json.dumps({"job": view} | counts, indent=2))
    else:
        _print_fields(view | counts)
    return 0


def _agent_view(
    agent: TrainingAgent, user_name: str, now: datetime, threshold: timedelta
) -> dict[str, Any]:
    online = agents.is_online(agent, now=now, threshold=threshold)
    return {
        "agent_id": agent.agent_id,
        "user": user_name,
        "hostname": agent.hostname,
        "platform": agent.platform,
        "version": agent.version,
        "status": "online" if online else "offline",
        "revoked": agent.revoked_at is not None,
        "last_poll_at": _iso(agent.last_poll_at),
        "registered_at": _iso(agent.registered_at),
    }


def agents_list(args: argparse.Namespace) -> int:
    """Print the agents that have polled, newest first."""
    threshold = timedelta(seconds=_settings(args).online_threshold_seconds)
    with open_database(args) as db:
        user_id = None if args.user is None else users.get_user_by_name(db, name=args.user).id
        now = utcnow()
        listed = agents.list_agents(db, user_id=user_id)
        rows = [_agent_view(agent, name, now, threshold) for agent, name in listed]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(
                f"{row['agent_id']}  {row['status']:<7}  {row['hostname'] or '-'}  "
                f"{row['platform'] or '-'}  {row['version'] or '-'}  {row['last_poll_at']}"
            )
    return 0


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _print_fields(data: dict[str, Any]) -> None:
    for name, value in data.items():
        shown = json.dumps(value) if isinstance(value, dict | list) else value
        print(f"{name}: {shown}")
