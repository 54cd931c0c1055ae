"""``training-agent demo``: the whole system on one machine, in one process, in seconds.

Starts the reference backend on a temporary SQLite database and a free loopback port,
creates a user, a ``training`` key and a job, runs the agent against it until the job is
done, and shows the progress as the platform sees it. The job: with the ``train`` extra
installed, a FineTune Lab TrainingConfig for the built-in Hugging Face trainer (a tiny
causal LM with random weights, built locally, fine-tuned on a small chat dataset shipped
in the package); without it, the pure-Python demo trainer (logistic regression by SGD on
generated data). Both report real, decreasing losses.

``--serve`` then keeps the backend up and prints the Training Agent page's URL as a
single-use sign-in link (and the job's page), so the job's loss chart and log can be
seen in a browser; Ctrl-C (or SIGTERM) stops it and removes the demo's files.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from training_agent.agent import run_agent
from training_agent.config import Settings
from training_agent.errors import ConfigError
from training_agent.paths import AgentPaths

DEMO_CONFIG: dict[str, Any] = {
    "type": "demo",
    "samples": 4000,
    "features": 8,
    "epochs": 3,
    "batch_size": 32,
    "learning_rate": 0.1,
    "step_delay_s": 0.01,
}


DEMO_USER = "demo"
CHAT_DATASET = Path(__file__).parent.parent / "trainers" / "data" / "demo_chat.jsonl"
HF_MODULES = ("torch", "transformers", "peft", "datasets", "trl")


def hf_available() -> bool:
    """Whether this Python has the train extra (checked without importing torch)."""
    return all(importlib.util.find_spec(name) is not None for name in HF_MODULES)


def hf_demo_config(model_dir: Path) -> dict[str, Any]:
    """A FineTune Lab TrainingConfig: the tiny model, the shipped chat dataset, SFT."""
    return {
        "model": {"name": str(model_dir)},
        "tokenizer": {"name": str(model_dir)},
        "training": {
            "method": "sft",
            "num_epochs": 3,
            "batch_size": 8,
            "learning_rate": 0.01,
            "logging_steps": 1,
            "eval_steps": 11,
            "max_length": 128,
        },
        "data": {"eval_split": 0.1},
        "dataset_path": str(CHAT_DATASET),
    }


async def _job_config(workdir: Path, trainer: str) -> tuple[dict[str, Any], str]:
    if trainer == "logreg" or not hf_available():
        return DEMO_CONFIG, "demo trainer: logistic regression, 3 epochs"
    model_dir = workdir / "tiny-model"
    build = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "training_agent.trainers.tiny",
        str(model_dir),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    if await build.wait() != 0:
        print("could not build the tiny model; running the logistic-regression demo instead")
        return DEMO_CONFIG, "demo trainer: logistic regression, 3 epochs"
    return hf_demo_config(model_dir), "Hugging Face trainer: tiny causal LM, chat SFT, 3 epochs"


async def run_demo(
    *, keep: bool = False, serve: bool = False, port: int = 0, trainer: str = "auto"
) -> int:
    """Run the demo; 0 when the job completed with every report stored. ``serve``: then
    serve the pages until stopped."""
    try:
        import uvicorn

        from training_backend.app import create_app
        from training_backend.settings import BackendSettings
    except ImportError as exc:
        raise ConfigError(
            "the demo needs the backend; install it with the 'backend' extra "
            "(scripts/demo does this for you)"
        ) from exc
    try:
        sock = socket.create_server(("127.0.0.1", port))
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); pick another --port"
        ) from exc
    workdir = Path(tempfile.mkdtemp(prefix="training-agent-demo-"))
    settings = BackendSettings(
        database_url=f"sqlite:///{workdir / 'backend.sqlite3'}", poll_interval_seconds=1
    )
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if serving.done():
                serving.result()
            await asyncio.sleep(0.05)
        print(f"backend  {url}  (SQLite in {workdir})")
        code, job_id = await _run(url, settings.database_url, workdir, trainer)
        if serve:
            await _serve_until_stopped(url, settings.database_url, job_id)
        return code
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        sock.close()
        if keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


async def _run(url: str, database_url: str, workdir: Path, trainer: str) -> tuple[int, str]:
    config, what = await _job_config(workdir, trainer)
    key, job_id = _seed(database_url, config)
    print(f"job      {job_id}  ({what})")
    agent_settings = Settings(
        backend_url=url,
        api_key=key,
        max_jobs=1,
        min_poll_interval_seconds=0.5,
        log_level="WARNING",
        # The tiny model and the shipped chat dataset are local folders outside the job's
        # own: the demo allows them, as an owner would with data_dirs.
        data_dirs=(workdir / "tiny-model", CHAT_DATASET.parent.resolve()),
    )
    agent = asyncio.create_task(run_agent(agent_settings, AgentPaths.under(workdir / "agent")))
    show = _show_inline if sys.stdout.isatty() else _show_lines()
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}) as http:
        while not agent.done():
            await asyncio.wait({agent}, timeout=0.5)
            show(_progress(await _get(http, f"/api/training/local/{job_id}/status")))
        code = agent.result()
        state = await _get(http, f"/api/training/local/{job_id}/status")
        metrics = await _get(http, f"/api/training/local/{job_id}/metrics")
        logs = await _get(http, f"/api/training/local/{job_id}/logs", limit=1)
    if sys.stdout.isatty():
        print()
    points = metrics["metrics"]
    print(f"status   {state['status']}" + (f": {state['error']}" if state.get("error") else ""))
    for name in ("train_loss", "eval_loss"):
        values = [point[name] for point in points if point.get(name) is not None]
        if values:
            print(f"{name:<10} {values[0]:.4f} (first) -> {values[-1]:.4f} (last)")
    print(f"stored   {len(points)} metric points, {logs['total_lines']} log lines")
    return (0 if code == 0 and state["status"] == "completed" else 1), job_id


async def _serve_until_stopped(url: str, database_url: str, job_id: str) -> None:
    """Print the pages' URLs (a single-use sign-in first), then wait for Ctrl-C or SIGTERM."""
    link = _sign_in_link(database_url)
    print(f"page     {url}{link}")
    print("         (signs you in once, as the demo user, on the Training Agent page)")
    print(f"job page {url}/jobs/{job_id}  (its loss chart and log)")
    print("Serving; press Ctrl-C to stop (the demo's files are removed then).", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows: Ctrl-C raises
            loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
    print("stopped")


def _sign_in_link(database_url: str) -> str:
    """The path of a new single-use sign-in link of the demo user (valid an hour)."""
    from training_backend.db.engine import create_db_engine, create_session_factory
    from training_backend.services.sign_in_links import LINK_PATH, create_sign_in_link
    from training_backend.services.users import get_user_by_name

    engine = create_db_engine(database_url)
    try:
        with create_session_factory(engine)() as db:
            user = get_user_by_name(db, name=DEMO_USER)
            token = create_sign_in_link(
                db, user_id=user.id, now=datetime.now(UTC), ttl=timedelta(hours=1)
            )
    finally:
        engine.dispose()
    return LINK_PATH + token


def _seed(database_url: str, config: dict[str, Any]) -> tuple[str, str]:
    """A user, a training key and the demo job, straight into the backend's database."""
    from training_backend.db.engine import create_db_engine, create_session_factory
    from training_backend.services.api_keys import create_api_key
    from training_backend.services.jobs import create_job
    from training_backend.services.users import create_user

    engine = create_db_engine(database_url)
    try:
        with create_session_factory(engine)() as db:
            user = create_user(db, name=DEMO_USER)
            _, key = create_api_key(db, user_id=user.id, name="demo agent", scopes=["training"])
            job = create_job(
                db,
                user_id=user.id,
                config=config,
                model_name="demo-logreg" if config is DEMO_CONFIG else "tiny-llama",
                dataset_path=str(config.get("dataset_path", "generated")),
                now=datetime.now(UTC),
            )
            return key, job.id
    finally:
        engine.dispose()


async def _get(http: httpx.AsyncClient, path: str, **params: Any) -> dict[str, Any]:
    response = await http.get(path, params=params)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def _progress(state: dict[str, Any]) -> str:
    step, total = state.get("current_step") or 0, state.get("total_steps")
    line = f"{state['status']:<9} step {step}/{total or '?'}"
    if state.get("current_epoch") is not None:
        line += f"  epoch {state['current_epoch']:.2f}"
    for name in ("loss", "eval_loss"):
        if state.get(name) is not None:
            line += f"  {'train_loss' if name == 'loss' else name} {state[name]:.4f}"
    return line


def _show_inline(line: str) -> None:
    print(f"\r{line}".ljust(80), end="", flush=True)


def _show_lines() -> Callable[[str], None]:
    """For a log or a pipe: one line per change, no carriage returns."""
    last = [""]

    def show(line: str) -> None:
        if line != last[0]:
            print(line, flush=True)
            last[0] = line

    return show
