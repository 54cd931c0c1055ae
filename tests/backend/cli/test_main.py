"""The ``training-backend`` command line, run in-process on a temp database."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from training_backend.cli import main
from training_backend.db import create_db_engine, create_session_factory
from training_backend.db.types import utcnow
from training_backend.services.agents import AgentIdentity, record_poll
from training_backend.services.users import get_user_by_name


def run(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    code = main([*args, "--database-url", url])
    out, err = capsys.readouterr()
    return code, out, err


def job_file(tmp_path: Path, body: object) -> str:
    path = tmp_path / "job.json"
    path.write_text(json.dumps(body))
    return str(path)


def test_users_keys_and_jobs(capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path) -> None:
    code, out, _ = run(capsys, url, "users", "create", "alice")
    user_id, password = out.splitlines()  # not a terminal: a generated password follows
    assert code == 0 and len(user_id) == 36 and len(password) == 24

    code, key, _ = run(capsys, url, "keys", "create", "--user", "alice", "--scope", "training")
    assert code == 0 and key.startswith("wak_") and len(key.strip()) == 36

    body = {"model_name": "m", "config": {"type": "command", "command": ["true"]}}
    code, job_id, _ = run(
        capsys, url, "jobs", "submit", "--user", "alice", "--file", job_file(tmp_path, body)
    )
    assert code == 0 and len(job_id.strip()) == 36

    code, out, _ = run(capsys, url, "jobs", "show", job_id.strip(), "--json")
    shown = json.loads(out)
    assert code == 0
    assert shown["job"]["job_id"] == job_id.strip()
    assert shown["job"]["status"] == "pending"
    assert shown["job"]["config"] == body["config"]
    assert (shown["metric_points"], shown["log_lines"]) == (0, 0)


def test_jobs_show_without_json_prints_lines(
    capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path
) -> None:
    run(capsys, url, "users", "create", "alice")
    _, job_id, _ = run(
        capsys,
        url,
        "jobs",
        "submit",
        "--user",
        "alice",
        "--file",
        job_file(tmp_path, {"config": {}}),
    )
    _, out, _ = run(capsys, url, "jobs", "show", job_id.strip())
    assert "status: pending" in out.splitlines()


def test_agents_list(capsys: pytest.CaptureFixture[str], url: str) -> None:
    run(capsys, url, "users", "create", "alice")
    engine = create_db_engine(url)
    try:
        with create_session_factory(engine)() as db:
            user = get_user_by_name(db, name="alice")
            agent = AgentIdentity("agent_0123456789", hostname="box", platform="linux", version="1")
            record_poll(db, user_id=user.id, agent=agent, now=utcnow())
    finally:
        engine.dispose()

    code, out, _ = run(capsys, url, "agents", "list", "--user", "alice", "--json")

    [row] = json.loads(out)
    assert code == 0
    assert (row["agent_id"], row["hostname"], row["platform"], row["version"]) == (
        "agent_0123456789",
        "box",
        "linux",
        "1",
    )
    assert row["status"] == "online" and row["user"] == "alice" and row["revoked"] is False
    assert row["last_poll_at"] and row["registered_at"]


def test_agents_list_uses_the_online_threshold_setting(
    capsys: pytest.CaptureFixture[str], url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(capsys, url, "users", "create", "alice", "--no-password")
    engine = create_db_engine(url)
    try:
        with create_session_factory(engine)() as db:
            user = get_user_by_name(db, name="alice")
            two_minutes_ago = utcnow() - timedelta(minutes=2)
            record_poll(
                db, user_id=user.id, agent=AgentIdentity("agent_0123456789"), now=two_minutes_ago
            )
    finally:
        engine.dispose()

    _, default, _ = run(capsys, url, "agents", "list", "--json")
    monkeypatch.setenv("TRAINING_BACKEND_ONLINE_THRESHOLD_SECONDS", "300")
    _, longer, _ = run(capsys, url, "agents", "list", "--json")

    assert json.loads(default)[0]["status"] == "offline"
    assert json.loads(longer)[0]["status"] == "online"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["keys", "create", "--user", "nobody"], "No user named 'nobody'"),
        (["jobs", "show", "missing"], "No job with id 'missing'"),
        (["keys", "create", "--user", "alice", "--scope", "root"], "Invalid scopes: root"),
        (["jobs", "submit", "--user", "alice", "--file", "/no/such/file.json"], "No such file"),
    ],
)
def test_errors_are_one_sentence_on_stderr(
    capsys: pytest.CaptureFixture[str], url: str, args: list[str], message: str
) -> None:
    run(capsys, url, "users", "create", "alice")
    code, out, err = run(capsys, url, *args)
    assert code == 1
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_a_duplicate_user_is_refused(capsys: pytest.CaptureFixture[str], url: str) -> None:
    run(capsys, url, "users", "create", "alice")
    code, _, err = run(capsys, url, "users", "create", "alice")
    assert code == 1 and "already exists" in err


@pytest.mark.parametrize("content", ["{broken", "[1]", '{"config": "x"}'])
def test_a_bad_job_file_is_refused(
    capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path, content: str
) -> None:
    run(capsys, url, "users", "create", "alice")
    path = tmp_path / "bad.json"
    path.write_text(content)
    code, _, err = run(capsys, url, "jobs", "submit", "--user", "alice", "--file", str(path))
    assert code == 1 and err.count("\n") == 1


def test_an_unusable_database_url_is_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["users", "create", "x", "--database-url", "nosuchdb://user:secret@host/db"])
    err = capsys.readouterr().err
    assert code == 1
    assert "secret" not in err
    assert "Traceback" not in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["keys", "create"])
    assert exited.value.code == 2


def test_the_database_url_comes_from_the_environment_too(
    capsys: pytest.CaptureFixture[str], url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINING_BACKEND_DATABASE_URL", url)
    assert main(["users", "create", "alice"]) == 0
    capsys.readouterr()
    code, _, err = run(capsys, url, "users", "create", "alice")
    assert code == 1 and "already exists" in err
