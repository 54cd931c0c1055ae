"""``training-agent doctor [--json]``: what stands between this machine and running jobs.

One small function per check; each returns a :class:`Check` that is OK, WARN or FAIL,
with a hint that says what to do. The backend, TLS, key and clock checks share one
poll (:func:`probe_backend`) made by the agent's own client, so they see exactly what
the agent sees: the same TLS context (``tls.py``), the same proxy variables.
"""

from __future__ import annotations

import enum
import json
import os
import ssl
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime
from typing import TextIO
from urllib.parse import urlsplit

from training_agent.commands.doctor_probe import (
    PLACEHOLDER_KEY,
    Probe,
    probe_backend,
    proxy_for,
    tls_failure,
)
from training_agent.commands.install import LOCAL_HOSTS
from training_agent.config import Settings, load_settings
from training_agent.credentials import CredentialStore
from training_agent.errors import TrainingAgentError
from training_agent.gpus import NO_DRIVER, GpuProbe
from training_agent.identity import new_agent_id, read_agent_id
from training_agent.paths import AgentPaths
from training_agent.resources import free_disk_bytes
from training_agent.tls import extra_ca_file

CLOCK_WARN_S = 60.0  # log and metric times drift visibly
CLOCK_FAIL_S = 600.0  # certificates and signed links start to be refused


class Verdict(enum.Enum):
    OK = "OK"  # nothing to do
    WARN = "WARN"  # works, or cannot be checked; the hint says what would be better
    FAIL = "FAIL"  # the agent cannot run jobs until this is fixed


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str
    hint: str = ""


# -- the checks -----------------------------------------------------------------------


def check_backend(url: str, probe: Probe, environ: Mapping[str, str]) -> Check:
    if probe.status is not None or isinstance(tls_failure(probe.error), ssl.SSLError):
        return Check("backend", Verdict.OK, f"{url} answered in {probe.elapsed_ms:.0f} ms")
    proxy = proxy_for(url, environ)
    via = f" through the proxy {proxy}" if proxy else ""
    return Check(
        "backend",
        Verdict.FAIL,
        f"no answer{via}: {probe.error}",
        "check the address (training-agent install --backend-url URL), that the platform "
        "is up, and the network, firewall or proxy (HTTPS_PROXY, NO_PROXY)",
    )


def check_tls(url: str, probe: Probe, environ: Mapping[str, str]) -> Check:
    parts = urlsplit(url)
    if parts.scheme == "http":
        if parts.hostname in LOCAL_HOSTS:
            return Check("tls", Verdict.OK, "plain http to this machine: no TLS needed")
        return Check(
            "tls", Verdict.WARN, f"{url} is not encrypted", "use the platform's https:// URL"
        )
    failure = tls_failure(probe.error)
    ca_file = extra_ca_file(environ)
    trust = "the OS trust store" + (f" and {ca_file}" if ca_file else "")
    if failure is not None:
        return Check(
            "tls",
            Verdict.FAIL,
            f"the certificate of {parts.hostname} is not trusted by {trust}: {failure}",
            "install your organisation's CA in the OS trust store, or set SSL_CERT_FILE "
            "to a PEM file with it, then run 'training-agent service restart'",
        )
    if probe.status is None:
        return Check("tls", Verdict.WARN, "not checked: the backend cannot be reached")
    return Check("tls", Verdict.OK, f"certificate of {parts.hostname} verified by {trust}")


def check_proxy(url: str, environ: Mapping[str, str]) -> Check:
    proxy = proxy_for(url, environ)
    if proxy is None:
        return Check("proxy", Verdict.OK, "none (direct connection)")
    return Check("proxy", Verdict.OK, f"{proxy} (from the environment)")


def check_key(has_key: bool, probe: Probe) -> Check:
    if not has_key:
        return Check(
            "api key",
            Verdict.FAIL,
            "no API key stored and API_KEY is not set",
            "run 'training-agent login' with a key that has the 'training' scope",
        )
    if probe.status is None:
        return Check("api key", Verdict.WARN, "not checked: the backend cannot be reached")
    if probe.status in (401, 403):
        return Check(
            "api key",
            Verdict.FAIL,
            f"the backend refused the key ({probe.status}): {probe.error}",
            "create a key with the 'training' scope on the platform's Training Agent page "
            "and run 'training-agent login'",
        )
    if probe.error is not None:
        return Check(
            "api key",
            Verdict.FAIL,
            f"the poll failed: {probe.error}",
            "check that the URL is the platform's address",
        )
    return Check("api key", Verdict.OK, "accepted by the backend (scope 'training')")


def check_clock(probe: Probe) -> Check:
    if not probe.server_date:
        return Check("clock", Verdict.WARN, "not checked: no Date header from the backend")
    try:
        server = parsedate_to_datetime(probe.server_date).timestamp()
    except (TypeError, ValueError):
        return Check("clock", Verdict.WARN, f"unreadable Date header {probe.server_date!r}")
    skew = probe.received_at - server
    detail = f"{skew:+.0f} s from the backend's clock"
    if abs(skew) < CLOCK_WARN_S:
        return Check("clock", Verdict.OK, detail)
    return Check(
        "clock",
        Verdict.FAIL if abs(skew) >= CLOCK_FAIL_S else Verdict.WARN,
        detail,
        "turn on time synchronisation (timedatectl set-ntp true; macOS: Date & Time "
        "settings; Windows: w32tm /resync)",
    )


def check_keyring(paths: AgentPaths, settings: Settings) -> Check:
    if settings.api_key is not None:
        return Check("keyring", Verdict.OK, "API_KEY from the environment (the store is unused)")
    store = CredentialStore(paths.config_dir)
    described = store.describe()
    if described.startswith("keyring"):
        return Check("keyring", Verdict.OK, described)
    return Check(
        "keyring",
        Verdict.WARN,
        described,
        "normal on a server or for a system service (the file is readable by its owner "
        "only); on a desktop, unlock or set up the keyring and run 'training-agent login'",
    )


def check_service(paths: AgentPaths, *, system: bool) -> Check:
    from training_agent.service import ServiceState, service_manager

    try:
        status = service_manager(paths, system=system, say=lambda _line: None).status()
    except TrainingAgentError as exc:
        return Check("service", Verdict.WARN, str(exc))
    if status.state is ServiceState.RUNNING:
        return Check("service", Verdict.OK, f"running ({status.detail})")
    hint = {
        ServiceState.NOT_INSTALLED: "run 'training-agent service install'",
        ServiceState.STOPPED: "run 'training-agent service start' (and see "
        "'training-agent service logs')",
    }.get(status.state, "run 'training-agent start' in a terminal if no service manager runs")
    return Check("service", Verdict.WARN, f"{status.state.value}: {status.detail}", hint)


def check_gpu(probe: GpuProbe | None = None) -> Check:
    """The GPUs jobs can use: NVIDIA's with the driver, or Apple silicon's ``mps``."""
    reading = (probe or GpuProbe()).read()
    if reading.gpus:
        return Check("gpu", Verdict.OK, reading.summary())
    if reading.note == NO_DRIVER:
        return Check(
            "gpu",
            Verdict.WARN,
            f"{NO_DRIVER}: jobs run on the CPU",
            "install the NVIDIA driver (nvidia-smi must work) if this machine has a GPU",
        )
    if reading.note and "nvidia-ml-py" in reading.note:
        return Check(
            "gpu",
            Verdict.WARN,
            f"GPUs cannot be listed: {reading.note}",
            "reinstall training-agent (jobs still run; GPUs are not reported)",
        )
    return Check("gpu", Verdict.WARN, f"no GPU: {reading.note}", "check that nvidia-smi works")


def check_disk(paths: AgentPaths, min_free_gb: float) -> Check:
    free = free_disk_bytes(paths.jobs_dir)
    if free is None:
        return Check("disk", Verdict.WARN, f"cannot read the free space at {paths.jobs_dir}")
    free_gb = free / 1e9
    detail = f"{free_gb:.1f} GB free at {paths.data_dir} (min_free_disk_gb = {min_free_gb:g})"
    if free_gb >= min_free_gb:
        return Check("disk", Verdict.OK, detail)
    return Check(
        "disk",
        Verdict.FAIL,
        detail + ": the agent claims no job",
        "free some space (old job directories in the data directory), or lower min_free_disk_gb",
    )


# -- running them ---------------------------------------------------------------------


def run_checks(paths: AgentPaths, *, system: bool = False) -> list[Check]:
    """Every check, in the order a person fixes them."""
    environ = os.environ
    settings = load_settings(config_file=paths.config_file)
    url = settings.backend_url
    checks: list[Check] = []
    if url is None:
        checks.append(
            Check(
                "backend",
                Verdict.FAIL,
                "no backend URL configured",
                "run 'training-agent install' (or set BACKEND_URL)",
            )
        )
    else:
        secret = settings.api_key
        key = secret.get_secret_value() if secret else CredentialStore(paths.config_dir).load(url)
        probe = probe_backend(
            url, key or PLACEHOLDER_KEY, read_agent_id(paths.agent_id_file) or new_agent_id()
        )
        checks += [
            check_backend(url, probe, environ),
            check_tls(url, probe, environ),
            check_proxy(url, environ),
            check_key(key is not None, probe),
            check_clock(probe),
        ]
    checks += [
        check_keyring(paths, settings),
        check_service(paths, system=system),
        check_gpu(),
        check_disk(paths, settings.min_free_disk_gb),
    ]
    return checks


def doctor_command(
    paths: AgentPaths, *, as_json: bool, system: bool = False, out: TextIO | None = None
) -> int:
    """Print the checks; exit code 1 when any FAILs."""
    stream = sys.stdout if out is None else out
    checks = run_checks(paths, system=system)
    failed = any(check.verdict is Verdict.FAIL for check in checks)
    if as_json:
        rows = [{**asdict(check), "verdict": check.verdict.value} for check in checks]
        print(json.dumps({"ok": not failed, "checks": rows}, indent=2), file=stream)
    else:
        for check in checks:
            print(f"{check.verdict.value:<5} {check.name:<8} {check.detail}", file=stream)
            if check.hint and check.verdict is not Verdict.OK:
                print(f"{'':<14} fix: {check.hint}", file=stream)
    return 1 if failed else 0
