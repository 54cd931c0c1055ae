"""The one TLS context the agent trusts servers with; ``doctor`` checks with the same one.

Certificates are verified against the OS trust store through ``truststore`` (macOS
Keychain, the Windows certificate store, the distribution's CA bundle on Linux), so a
company CA the administrator installed in the OS is trusted without configuration.
A CA bundle named by ``SSL_CERT_FILE`` (or ``REQUESTS_CA_BUNDLE``, which many tools set
instead) is trusted in addition. On Linux OpenSSL itself also reads ``SSL_CERT_FILE`` /
``SSL_CERT_DIR`` as the default locations, as every OpenSSL program does.

Rejected: certifi's bundle (httpx's default) ignores the CAs an administrator put into
the OS, which is the usual reason an agent behind a TLS-inspecting proxy cannot connect.
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Mapping
from pathlib import Path

import truststore

from training_agent.errors import ConfigError

CA_FILE_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


def extra_ca_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """The CA bundle the environment names (``SSL_CERT_FILE`` first), or None."""
    env = os.environ if environ is None else environ
    for name in CA_FILE_VARIABLES:
        value = env.get(name, "").strip()
        if value:
            return Path(value)
    return None


def ssl_context(environ: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """A client context: the OS trust store, plus the extra CA bundle when one is set.

    Raises ``ConfigError`` when the named CA bundle cannot be read.
    """
    ca_file = extra_ca_file(environ)
    return _context(None if ca_file is None else str(ca_file))


# Building a context loads the CA bundles (about 0.1 s), and every client would build
# one: contexts are shared instead, one per CA bundle (SSLContext is safe to share).
@functools.lru_cache(maxsize=8)
def _context(ca_file: str | None) -> ssl.SSLContext:
    context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot load the CA bundle {ca_file} (from SSL_CERT_FILE or "
                "REQUESTS_CA_BUNDLE): point it at a readable PEM file or unset it"
            ) from exc
    return context
