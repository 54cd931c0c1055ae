"""``training-backend releases add PATH…``: serve built agent archives from this backend.

Copies each archive into the releases directory (``--releases-dir``, else
``TRAINING_BACKEND_RELEASES_DIR``, else ``releases`` in the user data directory) and
records its SHA-256 in ``SHA256SUMS`` there; stdout gets one ``sha256sum`` line per
archive. stderr says which version the download endpoint serves, when the archives
added are another one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from training_backend.cli.common import Subcommands
from training_backend.services.releases import add_releases
from training_backend.settings import BackendSettings


def releases_add(args: argparse.Namespace) -> int:
    """Add the archives; print their checksum lines."""
    given = {} if args.releases_dir is None else {"releases_dir": args.releases_dir}
    settings = BackendSettings(**given)
    added = add_releases(settings.releases_dir, [Path(path) for path in args.paths])
    for release in added:
        print(f"{release.sha256}  {release.filename}")
    print(f"Added {len(added)} archive(s) to {settings.releases_dir}.", file=sys.stderr)
    others = sorted({release.version for release in added} - {settings.agent_version})
    if others:
        print(
            f"The download endpoint serves version {settings.agent_version}; to serve "
            f"{', '.join(others)}, set TRAINING_BACKEND_AGENT_VERSION and restart it.",
            file=sys.stderr,
        )
    return 0


def add_releases_parser(commands: Subcommands) -> None:
    """``releases add`` on the ``training-backend`` command line."""
    releases = commands.add_parser("releases", help="Manage the agent downloads.")
    group = releases.add_subparsers(required=True)
    text = "Copy built agent archives into the releases directory and record their checksums."
    add = group.add_parser("add", help=text, description=text)
    add.add_argument("paths", nargs="+", metavar="PATH", help="a training-agent-*.tar.gz or .zip")
    add.add_argument("--releases-dir", help="default: TRAINING_BACKEND_RELEASES_DIR")
    add.set_defaults(command=releases_add)
