"""The app's background tasks, started and stopped with its lifespan.

- housekeeping (``housekeeping.py``): lease expiry, forgetting stale agents;
- the shared re-check (``services.recheck``): once a second while a poll is held or the
  poll caches remember anything, what lost signals would have said;
- the agents' "still here" row writes (``services.agent_refreshes``), about once a
  second, and once more as the app stops;
- on PostgreSQL, the ``LISTEN`` connection that wakes this process's long polls when
  another process submits or requeues a job (``services.pg_listener``);
  ``app.state.notifications_listening`` is set once it listens;
- and for as long as they run, SIGTERM and SIGINT first answer the held polls
  (``stopping.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from sqlalchemy import Engine

from training_backend.housekeeping import Housekeeping
from training_backend.services.pg_listener import listen_forever
from training_backend.services.recheck import Recheck
from training_backend.services.wakeups import Wakeups
from training_backend.settings import BackendSettings
from training_backend.stopping import closing_held_polls


@contextlib.asynccontextmanager
async def background_tasks(app: FastAPI) -> AsyncIterator[None]:
    """Run the background tasks of ``app`` (started) for the duration of the block."""
    settings: BackendSettings = app.state.settings
    wakeups: Wakeups = app.state.wakeups
    wakeups.bind(asyncio.get_running_loop())
    app.state.housekeeping = Housekeeping(app.state.session_factory, settings, wakeups)
    cache = app.state.poll_cache
    app.state.recheck = Recheck(
        app.state.session_factory,
        wakeups,
        wanted=lambda: wakeups.waiting() > 0 or len(cache) > 0,
        on_pass=cache.sweep,
    )
    tasks = [
        asyncio.create_task(app.state.housekeeping.run(), name="housekeeping"),
        asyncio.create_task(app.state.recheck.run(), name="recheck"),
        asyncio.create_task(app.state.agent_refreshes.run(app.state.session_factory)),
    ]
    app.state.notifications_listening = listening = asyncio.Event()
    if _is_postgresql(app):
        listener = listen_forever(settings.database_url, wakeups, listening=listening)
        tasks.append(asyncio.create_task(listener, name="job notifications"))
    try:
        with closing_held_polls(wakeups.close):
            yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await app.state.agent_refreshes.flush(app.state.session_factory)  # what is left


def _is_postgresql(app: FastAPI) -> bool:
    engine: Engine = app.state.session_factory.kw["bind"]
    return engine.dialect.name == "postgresql"
