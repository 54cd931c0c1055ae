"""Every exception the agent raises on purpose.

    TrainingAgentError          base: str(exc) is one sentence a user can act on
    ├── ConfigError             bad settings, config.toml or command line
    ├── StateError              the state dir cannot be read or written
    ├── JobConfigError          a job's config cannot be run: the job fails, the agent goes on
    ├── AgentNotRunningError    no agent answers on this machine (``status``: exit code 3)
    ├── StatusApiError          the local status API refused or failed a request
    ├── CredentialError         the API key cannot be stored, read or removed
    ├── ServiceError            the background service cannot be installed, run or queried
    └── ApiError                talking to the backend failed
        ├── TransportError      no answer: connect/read failure or timeout (retryable)
        ├── ProtocolError       an answer that is not JSON or not the expected shape
        └── HttpStatusError     a non-2xx answer, with status, code and Retry-After
            ├── AuthError       401/403 on an API-key call: key rejected, no scope, revoked
            ├── ConflictError   409: already claimed, invalid transition, lease expired...
            └── AgentOutdatedError  426: the backend needs a newer agent (``start`` exits 5)

Foreign exceptions (httpx, OSError, sqlite3, psutil) are converted where they enter,
with ``raise ... from exc``, so callers only ever catch these.
"""

from __future__ import annotations


class TrainingAgentError(Exception):
    """Base of every deliberate agent error; the message is one readable sentence."""


class ConfigError(TrainingAgentError):
    """The settings, config file or command line are invalid."""


class StateError(TrainingAgentError):
    """The agent's state directory cannot be read or written."""


class JobConfigError(TrainingAgentError):
    """A job's config cannot be run; the job is reported failed with this message."""


class AgentNotRunningError(TrainingAgentError):
    """No agent is running here: no status file, its process is gone, or nobody listens."""


class StatusApiError(TrainingAgentError):
    """The local status API answered with an error (a wrong token, an unknown job...)."""


class CredentialError(TrainingAgentError):
    """The API key cannot be stored, read or removed (keyring or credential file)."""


class ServiceError(TrainingAgentError):
    """The service manager (systemd, launchd, Task Scheduler) refused or is missing."""


class ApiError(TrainingAgentError):
    """A call to the backend failed."""


class TransportError(ApiError):
    """The backend did not answer: connection refused, reset, DNS failure or timeout.

    ``untrusted_certificate`` marks the one kind no retry mends by itself: the backend's
    TLS certificate is not trusted on this machine (it is still retried, but said at once).
    """

    def __init__(self, message: str, *, untrusted_certificate: bool = False) -> None:
        super().__init__(message)
        self.untrusted_certificate = untrusted_certificate


class ProtocolError(ApiError):
    """The backend answered something that is not JSON or not the expected shape."""


class HttpStatusError(ApiError):
    """The backend answered with a non-2xx status.

    ``code`` is the machine code of the error body (``{"error", "code"}``) when present,
    ``retry_after_s`` the parsed ``Retry-After`` header when present.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        retry_after_s: float | None = None,
        body: object = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after_s = retry_after_s
        self.body = body


class AuthError(HttpStatusError):
    """401 or 403 on an API-key call: the key is wrong, lacks the scope, or the agent is revoked."""


class ConflictError(HttpStatusError):
    """409: the job was claimed elsewhere, the transition is invalid, or the lease expired."""


class AgentOutdatedError(HttpStatusError):
    """426: the backend accepts only newer agents; the message says where to download one."""

    def __init__(
        self,
        message: str,
        *,
        download_url: str | None,
        status: int = 426,
        code: str | None = None,
        retry_after_s: float | None = None,
        body: object = None,
    ) -> None:
        super().__init__(message, status=status, code=code, retry_after_s=retry_after_s, body=body)
        self.download_url = download_url
