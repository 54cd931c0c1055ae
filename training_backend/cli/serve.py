"""``training-backend serve``: run the HTTP API until interrupted, in one process or in
``--workers N`` processes sharing one socket (PostgreSQL only)."""

from __future__ import annotations

import argparse
import functools

from training_backend.cli.common import Subcommands, add_command, settings_of
from training_backend.errors import ApiError

#: What ``--workers`` above 1 on SQLite says (and why).
SQLITE_WORKERS = (
    "--workers above 1 needs PostgreSQL: on SQLite there is no way for the processes to "
    "wake each other's held polls, so use --database-url postgresql+psycopg://... or run "
    "one process"
)


def serve(args: argparse.Namespace) -> int:
    """Run the API with uvicorn until interrupted."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from training_backend.app import create_app

    settings = settings_of(args, host=args.host, port=args.port)
    workers = args.workers
    if workers > 1 and not settings.database_url.startswith("postgresql"):
        raise ApiError(400, "INVALID_REQUEST", SQLITE_WORKERS)
    config = uvicorn.Config(
        # The workers are spawned processes: each builds its app from these settings,
        # which reach it pickled with the config (never through the environment).
        functools.partial(create_app, settings),
        factory=True,
        workers=workers,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        # The client address (sign-in throttle) and scheme (Secure cookie, HSTS) come
        # from X-Forwarded-* only when the proxy sending them is one of these.
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    if workers > 1:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        uvicorn.Server(config).run()
    return 0


def add_serve_parser(commands: Subcommands) -> None:
    """``serve`` on the ``training-backend`` command line."""
    text = "Run the HTTP API (migrates the database first)."
    parser = add_command(commands, "serve", serve, text)
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (default 8000)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        choices=range(1, 65),
        metavar="N",
        help="processes serving one socket (PostgreSQL only; default 1)",
    )
    levels = ["critical", "error", "warning", "info", "debug"]
    parser.add_argument("--log-level", choices=levels, default="info")
