"""Liveness for load balancers and tests."""

from __future__ import annotations

from fastapi import APIRouter

from training_backend import __version__

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """``{"status": "ok", "version": …}`` once the app has started (migrations applied)."""
    return {"status": "ok", "version": __version__}
