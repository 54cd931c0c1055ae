"""The job summary's ``progress`` (percent, capped at 100), computed inside the UPDATE.

Computed in SQL from the row's own columns so concurrent reports cannot mix a stale
step with a fresh total. Portable SQL only (no ``LEAST``, which SQLite lacks).
"""

from __future__ import annotations

from sqlalchemy import Float, case, cast, literal
from sqlalchemy.sql import ColumnElement

from training_backend.db.models import TrainingJob


def progress_at_step(step: int) -> ColumnElement[float | None]:
    """Progress once the job reached ``step``; unchanged while ``total_steps`` is unknown."""
    total = TrainingJob.total_steps
    return case(
        (total.is_(None) | (total <= 0), TrainingJob.progress),
        (total <= step, literal(100.0)),
        else_=literal(step * 100.0) / cast(total, Float),
    )


def progress_of_total(total_steps: int) -> ColumnElement[float | None]:
    """Progress once ``total_steps`` is known; unchanged while no step was reported."""
    step = TrainingJob.current_step
    if total_steps <= 0:
        return TrainingJob.progress.expression
    return case(
        (step.is_(None), TrainingJob.progress),
        (step >= total_steps, literal(100.0)),
        else_=cast(step, Float) * 100.0 / float(total_steps),
    )
