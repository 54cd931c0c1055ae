"""Dataset URLs that a job names: http(s) to public addresses only, and a size cap.

A job config's ``dataset_path`` may be a URL, which the GPU machine fetches. Without
limits that is a way into the machine's network: the cloud metadata service (the
machine's credentials), the admin pages of the local network. So:

- only ``http://`` and ``https://``;
- every address the host resolves to must be public: not loopback, link-local
  (169.254.0.0/16, fe80::/10), private, shared, reserved or multicast, unless the
  owner set ``allow_private_urls``; a cloud metadata address never;
- the address actually connected to is checked again (a DNS answer can change between
  the check and the connect), and so is every redirect;
- at most ``max_bytes`` are read (``Content-Length`` first, then while streaming).

Through a proxy the proxy connects, so the checks are on what the host resolves to here.
``open_url`` is what the trainer fetches with; ``check_url`` is the same check without
the request, which the agent runs before the trainer starts. Standard library only.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

# Reachable from inside a cloud VM and holding its credentials: never for a job.
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)

Resolver = Callable[[str, int], list[str]]


class UrlRefused(OSError):
    """The URL may not be fetched by a job; the message is one sentence."""


def scheme_refused(url: str) -> str | None:
    """Why ``url`` is not an http(s) URL with a host, or None when it is."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return (
            f"the dataset URL {_shown(url)} is not an http(s) URL; name an https:// URL "
            "or a local file in dataset_path"
        )
    return None


def address_refused(address: str, *, allow_private: bool) -> str | None:
    """Why a job may not connect to ``address``, or None when it may."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "an address that is not an IP address"
    embedded = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        embedded += [a for a in (ip.ipv4_mapped, ip.sixtofour) if a is not None]
        if ip.teredo is not None:
            embedded.append(ip.teredo[1])
    if any(a in METADATA for a in embedded):
        return "a cloud metadata address, which jobs may never fetch"
    if allow_private:
        return None
    if any(not a.is_global or a.is_multicast for a in embedded):
        return (
            "a loopback, link-local or private address; the machine's owner can allow "
            "those with allow_private_urls = true (TRAINING_AGENT_ALLOW_PRIVATE_URLS=1)"
        )
    return None


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to here."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def check_url(url: str, *, allow_private: bool, resolver: Resolver = resolve) -> None:
    """Raise ``UrlRefused`` unless ``url`` is http(s) to public addresses only.

    A host that does not resolve passes: the download itself will say so.
    """
    refused = scheme_refused(url)
    if refused is not None:
        raise UrlRefused(refused)
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        addresses = resolver(host, parts.port or (443 if parts.scheme == "https" else 80))
    except (OSError, UnicodeError):
        return
    for address in addresses:
        why = address_refused(address, allow_private=allow_private)
        if why is not None:
            raise UrlRefused(f"the dataset URL {_shown(url)} leads to {why}")


class TooLarge(UrlRefused):
    """The body is larger than the cap."""


def open_url(url: str, *, allow_private: bool, timeout_s: float = 60.0) -> http.client.HTTPResponse:
    """Open ``url`` for reading with every check above; raises ``UrlRefused`` or ``OSError``."""
    check_url(url, allow_private=allow_private)
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.UnknownHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
        _Redirects(allow_private),
        _Http(allow_private),
        _Https(allow_private),
    ):
        opener.add_handler(handler)
    try:
        response: http.client.HTTPResponse = opener.open(url, timeout=timeout_s)
    except urllib.error.URLError as exc:  # a refused peer arrives wrapped
        if isinstance(exc.reason, UrlRefused):
            raise exc.reason from None
        raise
    return response


def copy_capped(
    response: IO[bytes], write: Callable[[bytes], object], *, max_bytes: int, url: str
) -> int:
    """Hand the body to ``write`` in chunks; ``TooLarge`` past ``max_bytes``. The bytes read."""
    declared = response.headers.get("Content-Length") if hasattr(response, "headers") else None
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(_too_large(url, max_bytes))
    copied = 0
    while chunk := response.read(1024 * 1024):
        copied += len(chunk)
        if copied > max_bytes:
            raise TooLarge(_too_large(url, max_bytes))
        write(chunk)
    return copied


def _too_large(url: str, max_bytes: int) -> str:
    return (
        f"the dataset at {_shown(url)} is larger than max_dataset_download_gb "
        f"({max_bytes / 10**9:g} GB); the machine's owner can raise that setting "
        "(TRAINING_AGENT_MAX_DATASET_DOWNLOAD_GB)"
    )


def _shown(url: str) -> str:
    """The URL without a password or query, which may carry a secret."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme else url[:200]


def _check_peer(sock: socket.socket, url_host: str, allow_private: bool) -> None:
    address = str(sock.getpeername()[0])
    why = address_refused(address, allow_private=allow_private)
    if why is not None:
        sock.close()
        raise UrlRefused(f"the dataset host {url_host} leads to {why}")


class _GuardedHttp(http.client.HTTPConnection):
    def __init__(self, *args: Any, check: bool | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._check = check  # None: through a proxy (the target was checked by name)

    def connect(self) -> None:
        super().connect()
        if self._check is not None and self.sock is not None:
            _check_peer(self.sock, self.host, self._check)


class _GuardedHttps(http.client.HTTPSConnection):
    def __init__(self, *args: Any, check: bool | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._check = check

    def connect(self) -> None:
        super().connect()  # TCP and TLS; nothing of the request is sent before the check
        if self._check is not None and self.sock is not None:
            _check_peer(self.sock, self.host, self._check)


def _direct(request: urllib.request.Request, allow_private: bool) -> bool | None:
    proxied = request.has_proxy() or getattr(request, "_tunnel_host", None)
    return None if proxied else allow_private


class _Http(urllib.request.HTTPHandler):
    def __init__(self, allow_private: bool) -> None:
        super().__init__()
        self._allow_private = allow_private

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        check = _direct(req, self._allow_private)
        return self.do_open(functools.partial(_GuardedHttp, check=check), req)


class _Https(urllib.request.HTTPSHandler):
    def __init__(self, allow_private: bool) -> None:
        super().__init__(context=ssl.create_default_context())
        self._allow_private = allow_private

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        check = _direct(req, self._allow_private)
        connection = functools.partial(_GuardedHttps, check=check)
        return self.do_open(connection, req, context=self._context)  # type: ignore[attr-defined]


class _Redirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, allow_private: bool) -> None:
        super().__init__()
        self._allow_private = allow_private

    def http_error_302(  # every redirect code comes here (see below)
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str, headers: Any
    ) -> Any:
        target = headers.get("location") or headers.get("uri")
        if target:  # checked before urllib looks at it, so every refusal reads the same
            check_url(urljoin(req.full_url, target), allow_private=self._allow_private)
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302
