"""``DbRoute``: the route class of every router that touches the database.

A sync route runs in a worker thread, and FastAPI then validates and serialises its
answer in *another* worker-thread hop. A session still holding a pooled connection at
that point keeps it across the hop; under load every thread ends up waiting for a
connection that belongs to a request waiting for a thread, and the server hangs until
the pool times out. So a route's sessions are closed as the route returns, in its own
thread. Rows it returns stay readable (sessions do not expire them on commit).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from fastapi.routing import APIRoute
from sqlalchemy.orm import Session


class DbRoute(APIRoute):
    """An ``APIRoute`` whose sync endpoint releases its sessions before it returns."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = _closing_sessions(endpoint)
        super().__init__(path, endpoint, **kwargs)


def _closing_sessions(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return endpoint(*args, **kwargs)
        finally:
            for value in kwargs.values():
                if isinstance(value, Session):
                    value.close()

    return run
