"""Dataset URLs a job names: http(s), public addresses only, no redirect inward, a cap.

The server is a real one on loopback, which a job may reach only where the owner set
``allow_private_urls``: the tests of what passes set it, the tests of refusals do not.
"""

from __future__ import annotations

import http.server
import io
import threading
from collections.abc import Iterator

import pytest

from training_agent import url_guard
from training_agent.url_guard import UrlRefused, address_refused, check_url, open_url

BODY = b'{"text": "hello"}\n' * 100


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/to-metadata"):
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()
        elif self.path.startswith("/to-file"):
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.end_headers()
        elif self.path.startswith("/unsized"):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(BODY)  # no Content-Length: the cap counts while reading
        else:
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "192.168.0.10", "172.16.5.4", "169.254.10.1", "100.64.0.1",
     "::1", "fe80::1", "fd12::1", "::ffff:127.0.0.1", "2002:7f00:1::1", "0.0.0.0", "224.0.0.1"],
)  # fmt: skip
def test_private_addresses_are_refused_unless_allowed(address: str) -> None:
    why = address_refused(address, allow_private=False)
    assert why is not None and "allow_private_urls" in why
    assert address_refused(address, allow_private=True) is None


@pytest.mark.parametrize("address", ["169.254.169.254", "fd00:ec2::254", "100.100.100.200"])
def test_metadata_addresses_are_refused_even_when_private_ones_are_allowed(address: str) -> None:
    assert "cloud metadata" in str(address_refused(address, allow_private=True))


def test_public_addresses_pass() -> None:
    for address in ("8.8.8.8", "2606:4700:4700::1111", "151.101.1.69"):
        assert address_refused(address, allow_private=False) is None


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/x", "gopher://x/", "http:///nohost"]
)
def test_only_http_urls_with_a_host(url: str) -> None:
    with pytest.raises(UrlRefused, match="is not an http\\(s\\) URL"):
        check_url(url, allow_private=True)


def test_a_name_that_resolves_inward_is_refused_before_any_request() -> None:
    def resolver(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "10.0.0.5"]  # one inward answer is enough

    with pytest.raises(UrlRefused) as refused:
        check_url("https://user:pw@data.example.com/x.jsonl?token=s3cr3t", allow_private=False,
                  resolver=resolver)  # fmt: skip
    message = str(refused.value)
    assert message.startswith("the dataset URL https://data.example.com/x.jsonl leads to a")
    assert "s3cr3t" not in message and "pw" not in message


def test_loopback_is_refused_and_nothing_is_requested(server: str) -> None:
    with pytest.raises(UrlRefused, match="allow_private_urls"):
        open_url(f"{server}/d.jsonl", allow_private=False)


def test_the_connected_address_is_checked_again() -> None:
    # A DNS answer can change between the check and the connect (rebinding): the
    # connection itself refuses an inward peer.
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    try:
        connection = url_guard._GuardedHttp("127.0.0.1", httpd.server_address[1], check=False)
        with pytest.raises(UrlRefused, match="leads to a loopback"):
            connection.connect()
        assert connection.sock is None or connection.sock.fileno() == -1
    finally:
        httpd.server_close()


def test_an_allowed_url_is_read_within_the_cap(server: str) -> None:
    chunks: list[bytes] = []
    with open_url(f"{server}/d.jsonl", allow_private=True) as response:
        copied = url_guard.copy_capped(response, chunks.append, max_bytes=10_000, url=server)
    assert copied == len(BODY) and b"".join(chunks) == BODY


@pytest.mark.parametrize("path", ["/d.jsonl", "/unsized"])
def test_a_body_over_the_cap_is_refused(server: str, path: str) -> None:
    out = io.BytesIO()
    with (
        open_url(f"{server}{path}", allow_private=True) as response,
        pytest.raises(url_guard.TooLarge, match="larger than max_dataset_download_gb"),
    ):
        url_guard.copy_capped(response, out.write, max_bytes=len(BODY) - 1, url=server)
    assert len(out.getvalue()) < len(BODY)


@pytest.mark.parametrize(("path", "why"), [("/to-metadata", "cloud metadata"),
                                           ("/to-file", "not an http")])  # fmt: skip
def test_no_redirect_inward_or_off_http(server: str, path: str, why: str) -> None:
    with pytest.raises(UrlRefused, match=why):
        open_url(f"{server}{path}", allow_private=True)
