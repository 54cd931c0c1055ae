"""``training-agent login`` and ``logout``: put the API key into the credential store, or
take it out. The key is read with hidden input or from stdin, never from argv, and
checked with one poll before it is stored: a key the backend refuses stores nothing."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from typing import TextIO

from training_agent.config import load_settings
from training_agent.credentials import CredentialStore, StorePreference, check_api_key_shape
from training_agent.errors import ConfigError, CredentialError
from training_agent.identity import new_agent_id, read_agent_id
from training_agent.paths import AgentPaths


def resolve_backend_url(paths: AgentPaths, flag: str | None) -> str:
    """``--backend-url``, else ``BACKEND_URL``, else config.toml; one sentence if none."""
    url = load_settings(config_file=paths.config_file, backend_url=flag).backend_url
    if url is None:
        raise ConfigError(
            "no backend URL: give --backend-url (or set BACKEND_URL) to your platform's address"
        )
    return url


def read_api_key(
    *,
    from_stdin: bool,
    stdin: TextIO | None = None,
    prompt: Callable[[str], str] = getpass.getpass,
) -> str:
    """The key from stdin (``--api-key-stdin``) or a hidden prompt, checked for shape."""
    source = sys.stdin if stdin is None else stdin
    if from_stdin:
        value = source.readline()
    elif source.isatty():
        value = prompt("API key (hidden): ")
    else:
        raise CredentialError("no terminal to ask for the API key: pipe it in with --api-key-stdin")
    return check_api_key_shape(value)


def login_command(
    paths: AgentPaths,
    *,
    backend_url: str | None,
    api_key_stdin: bool,
    store: StorePreference,
    stdin: TextIO | None = None,
    out: TextIO | None = None,
) -> int:
    url = resolve_backend_url(paths, backend_url)
    key = read_api_key(from_stdin=api_key_stdin, stdin=stdin)
    from training_agent.commands.install import validate_key  # its imports: only for login

    # Refused or unreachable: one sentence, nothing stored.
    validate_key(url, key, read_agent_id(paths.agent_id_file) or new_agent_id())
    err = sys.stderr if out is None else out
    credentials = CredentialStore(
        paths.config_dir, prefer=store, warn=lambda line: print(f"training-agent: {line}", file=err)
    )
    saved = credentials.save(url, key)
    print(f"API key for {url} saved in the {saved.store} ({saved.location}).", file=err)
    return 0


def logout_command(paths: AgentPaths, *, backend_url: str | None, out: TextIO | None = None) -> int:
    url = resolve_backend_url(paths, backend_url)
    err = sys.stderr if out is None else out
    removed = CredentialStore(paths.config_dir).delete(url)
    if removed:
        print(f"API key for {url} removed from {', '.join(removed)}.", file=err)
    else:
        print(f"No API key was stored for {url}.", file=err)
    return 0
