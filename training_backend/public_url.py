"""This backend's URL as agents reach it: the ``public_url`` setting, else the request's."""

from __future__ import annotations

import re

from fastapi import Request

from training_backend.errors import ApiError
from training_backend.settings import PUBLIC_URL_PATTERN, BackendSettings


def backend_url(request: Request, settings: BackendSettings) -> str:
    """This backend's URL for agents: ``public_url``, else the one the request used."""
    if settings.public_url is not None:
        return settings.public_url
    url = str(request.base_url).rstrip("/")
    if re.fullmatch(PUBLIC_URL_PATTERN, url) is None:
        message = "Cannot tell this backend's URL; set TRAINING_BACKEND_PUBLIC_URL"
        raise ApiError(400, "UNKNOWN_PUBLIC_URL", message)
    return url
