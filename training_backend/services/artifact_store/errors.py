"""What a store raises: full (507 to the agent) or unreachable (503); both are retried."""

from __future__ import annotations

from training_backend.errors import ApiError


class StoreError(Exception):
    """A store could not do what it was asked; ``api_error`` is the answer to send."""

    status = 503
    code = "STORAGE_UNAVAILABLE"

    def api_error(self) -> ApiError:
        """The HTTP answer: this error's status and code with its sentence."""
        return ApiError(self.status, self.code, str(self))


class StoreFull(StoreError):
    """No room left where artifacts are stored."""

    status = 507
    code = "INSUFFICIENT_STORAGE"


class StoreUnavailable(StoreError):
    """The store failed or could not be reached (S3 down, a permission missing...)."""
