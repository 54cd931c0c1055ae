"""``training-backend serve``: run the HTTP API until interrupted."""

from __future__ import annotations

import argparse
from types import FrameType

from training_backend.cli.common import Subcommands, add_command, settings_of


def serve(args: argparse.Namespace) -> int:
    """Run the API with uvicorn until interrupted."""
    import uvicorn

    from training_backend.app import create_app

    settings = settings_of(args, host=args.host, port=args.port)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        # The client address (sign-in throttle) and scheme (Secure cookie, HSTS) come
        # from X-Forwarded-* only when the proxy sending them is one of these.
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            app.state.wakeups.close()  # held long polls answer now instead of holding the exit
            super().handle_exit(sig, frame)

    Server(config).run()
    return 0


def add_serve_parser(commands: Subcommands) -> None:
    """``serve`` on the ``training-backend`` command line."""
    text = "Run the HTTP API (migrates the database first)."
    parser = add_command(commands, "serve", serve, text)
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (default 8000)")
    levels = ["critical", "error", "warning", "info", "debug"]
    parser.add_argument("--log-level", choices=levels, default="info")
