"""doctor's checks one by one: TLS against a real HTTPS server on loopback with a
throwaway CA (trustme), and the checks that read a probe, the environment or NVML."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.support.fake_nvml import FakeNvml, NVMLError_LibraryNotFound
from training_agent.commands.doctor import (
    Verdict,
    check_clock,
    check_disk,
    check_gpu,
    check_key,
    check_proxy,
    check_tls,
)
from training_agent.commands.doctor_probe import Probe, probe_backend
from training_agent.gpus import GpuProbe, load_nvml
from training_agent.paths import AgentPaths

KEY = "wak_" + "d" * 32
AGENT_ID = "agent_" + "0" * 16


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"job": null, "poll_interval_seconds": 5}'
        self.send_response(200)  # send_response adds the Date header
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read answers, not the server's log."""


@pytest.fixture
def https_backend(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A TLS server on loopback whose certificate a throwaway CA signed; its URL and the
    CA's PEM file."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", ca_file
    finally:
        server.shutdown()
        server.server_close()


def test_an_unknown_ca_fails_tls_and_ssl_cert_file_makes_it_trusted(
    https_backend: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, ca_file = https_backend
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)

    untrusted = probe_backend(url, KEY, AGENT_ID)
    refused = check_tls(url, untrusted, {})

    assert refused.verdict is Verdict.FAIL and "SSL_CERT_FILE" in refused.hint
    assert "not trusted by the OS trust store" in refused.detail

    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    trusted = probe_backend(url, KEY, AGENT_ID)  # the agent's own client, same context

    assert trusted.status == 200 and trusted.error is None, trusted.error
    accepted = check_tls(url, trusted, {"SSL_CERT_FILE": str(ca_file)})
    assert accepted.verdict is Verdict.OK and str(ca_file) in accepted.detail
    assert check_key(True, trusted).verdict is Verdict.OK
    assert check_clock(trusted).verdict is Verdict.OK


def test_an_unreadable_ca_bundle_is_a_tls_failure_with_a_sentence(
    https_backend: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url, _ca = https_backend
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    probe = probe_backend(url, KEY, AGENT_ID)
    check = check_tls(url, probe, {"SSL_CERT_FILE": str(tmp_path / "missing.pem")})
    assert check.verdict is Verdict.FAIL and "cannot load the CA bundle" in check.detail


@pytest.mark.parametrize(("skew_s", "verdict"), [(3, "OK"), (-120, "WARN"), (3600, "FAIL")])
def test_clock_skew_comes_from_the_date_header(skew_s: float, verdict: str) -> None:
    now = 1_800_000_000.0
    probe = Probe(200, server_date=formatdate(now - skew_s, usegmt=True), received_at=now)
    check = check_clock(probe)
    assert check.verdict.value == verdict and f"{skew_s:+.0f} s" in check.detail
    assert check_clock(Probe(None)).verdict is Verdict.WARN


def test_plain_http_is_fine_locally_and_warned_about_elsewhere() -> None:
    probe = Probe(200)
    assert check_tls("http://127.0.0.1:8000", probe, {}).verdict is Verdict.OK
    assert check_tls("http://gpu-farm.example", probe, {}).verdict is Verdict.WARN


def test_the_proxy_in_use_is_named_without_its_password() -> None:
    env = {"HTTPS_PROXY": "http://bob:hunter2@proxy.corp:3128", "NO_PROXY": ".internal"}
    shown = check_proxy("https://app.example.com", env)
    assert shown.detail == "http://proxy.corp:3128 (from the environment)"
    assert "hunter2" not in shown.detail
    assert check_proxy("https://ml.internal", env).detail.startswith("none")
    assert check_proxy("https://app.example.com", {}).detail.startswith("none")


def test_refused_and_missing_keys_fail_with_the_way_out() -> None:
    assert "training-agent login" in check_key(False, Probe(200)).hint
    refused = check_key(True, Probe(401))
    assert refused.verdict is Verdict.FAIL and "'training' scope" in refused.hint


def test_too_little_disk_fails(tmp_path: Path) -> None:
    paths = AgentPaths.under(tmp_path)
    assert check_disk(paths, 0.001).verdict is Verdict.OK
    short = check_disk(paths, 1e9)  # a petabyte
    assert short.verdict is Verdict.FAIL and "claims no job" in short.detail


def test_gpu_names_the_devices_and_driver_or_says_why_not() -> None:
    found = check_gpu(GpuProbe(lambda: FakeNvml(count=1), apple_silicon=lambda: False))
    assert found.verdict is Verdict.OK
    assert found.detail == "1 GPU(s): NVIDIA A10 (20.0 of 24.0 GB free); driver 550.54.15"
    none = FakeNvml(init_error=NVMLError_LibraryNotFound())
    no_driver = check_gpu(
        GpuProbe(lambda: load_nvml(lambda name: none), apple_silicon=lambda: False)
    )
    assert no_driver.verdict is Verdict.WARN
    assert no_driver.detail == "no NVIDIA driver: jobs run on the CPU"
    assert "install the NVIDIA driver" in no_driver.hint
    mac = check_gpu(GpuProbe(lambda: None, apple_silicon=lambda: True))
    assert mac.verdict is Verdict.OK and mac.detail.startswith("1 GPU(s): mps (")
