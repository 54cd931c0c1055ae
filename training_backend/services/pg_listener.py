"""``LISTEN training_jobs`` on PostgreSQL: deliver other processes' signals (jobs on offer,
revocations) to this process's long polls and caches (see ``services.wakeups``).

One dedicated async psycopg connection per backend process, outside the SQLAlchemy pool
(it is held for ever). When it drops, the listener reconnects with a growing pause and
wakes every waiter once, since notifications sent meanwhile were lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from training_backend.services.wakeups import CHANNEL, Signal, Wakeups, this_process

log = logging.getLogger(__name__)

RECONNECT_FIRST_S = 0.5
RECONNECT_MAX_S = 30.0


def libpq_conninfo(database_url: str) -> str:
    """The libpq URI of a SQLAlchemy ``postgresql+psycopg://`` URL."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


async def _connect(conninfo: str) -> psycopg.AsyncConnection[Any]:
    # Shielded: a shutdown that cancels us mid-connect must still close the connection,
    # or psycopg warns about a connection deleted while open.
    connecting = asyncio.ensure_future(psycopg.AsyncConnection.connect(conninfo, autocommit=True))
    try:
        return await asyncio.shield(connecting)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await (await connecting).close()
        raise


async def listen_once(conninfo: str, wakeups: Wakeups, *, on_ready: Callable[[], None]) -> None:
    """Connect, ``LISTEN``, and wake users as notifications arrive, until the connection ends."""
    conn = await _connect(conninfo)
    try:
        await conn.execute(f"LISTEN {CHANNEL}")
        on_ready()
        me = this_process()
        async for notification in conn.notifies():
            signal = Signal.decode(notification.payload)
            if signal is not None and signal.origin != me:  # ours went out in-process
                wakeups.deliver(signal)
    finally:
        await conn.close()


async def listen_forever(
    database_url: str,
    wakeups: Wakeups,
    *,
    listening: asyncio.Event | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Keep a listener connected until cancelled (the app's shutdown).

    ``listening`` is set once the first ``LISTEN`` is in place (tests wait for it).
    """
    conninfo = libpq_conninfo(database_url)
    pause = RECONNECT_FIRST_S
    connected_before = False

    def ready() -> None:
        nonlocal pause, connected_before
        pause = RECONNECT_FIRST_S
        if connected_before:
            wakeups.wake_all()  # notifications sent while we were away are lost
        connected_before = True
        if listening is not None:
            listening.set()

    while True:
        try:
            await listen_once(conninfo, wakeups, on_ready=ready)
        except (psycopg.Error, OSError) as exc:
            log.warning("job notification listener lost its connection: %s", exc)
        await sleep(pause)
        pause = min(pause * 2, RECONNECT_MAX_S)
