"""Metric reports: points upserted by ``(job, step)``, and the job summary they feed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from training_backend.db.models import METRIC_FIELDS, TrainingJob, TrainingMetric
from training_backend.db.upsert import insert_for
from training_backend.schemas.reports import MetricPoint
from training_backend.services.metric_series import record_series
from training_backend.services.progress import progress_at_step

#: Point fields and the job summary columns they update.
_SUMMARY_COLUMNS = {"epoch": "current_epoch", "train_loss": "loss"} | {
    name: name for name in METRIC_FIELDS if name != "train_loss"
}


def merge_by_step(points: Sequence[MetricPoint]) -> dict[int, dict[str, Any]]:
    """Points folded per step: a later point's values win, its missing keys erase nothing."""
    merged: dict[int, dict[str, Any]] = {}
    for point in points:
        values = point.model_dump(exclude_none=True, exclude={"extra"})
        merged.setdefault(point.step, {}).update(values)
    return merged


def _series_by_step(points: Sequence[MetricPoint]) -> dict[int, dict[str, float]]:
    series: dict[int, dict[str, float]] = {}
    for point in points:
        if point.extra:
            series.setdefault(point.step, {}).update(point.extra)
    return series


def _upsert_points(db: Session, *, job_id: str, rows: list[dict[str, Any]], now: datetime) -> None:
    table = TrainingMetric.__table__
    stmt = insert_for(db, table)
    keep_stored = {
        name: func.coalesce(stmt.excluded[name], table.c[name]) for name in METRIC_FIELDS
    }
    stmt = stmt.on_conflict_do_update(
        index_elements=["job_id", "step"],
        set_=keep_stored | {"epoch": stmt.excluded.epoch, "updated_at": stmt.excluded.updated_at},
    )
    blank = dict.fromkeys(METRIC_FIELDS)
    params = [
        blank | row | {"job_id": job_id, "created_at": now, "updated_at": now} for row in rows
    ]
    db.execute(stmt, params)


def _summary_of(merged: dict[int, dict[str, Any]], *, since_step: int) -> dict[str, Any]:
    # The points at or after the stored step, folded in step order: each field ends up
    # with its value from the highest step that carried it, as if sent one by one.
    folded: dict[str, Any] = {}
    for step in sorted(s for s in merged if s >= since_step):
        folded |= merged[step]
    return folded


def _update_summary(
    db: Session, *, job_id: str, merged: dict[int, dict[str, Any]], now: datetime
) -> None:
    stored_step = db.scalar(select(TrainingJob.current_step).where(TrainingJob.id == job_id))
    latest = _summary_of(merged, since_step=stored_step or 0)
    if not latest:
        return  # every point is older than the summary: it stays as it is
    step = latest["step"]
    values: dict[str, Any] = {"current_step": step, "updated_at": now}
    values |= {column: latest[key] for key, column in _SUMMARY_COLUMNS.items() if key in latest}
    values["progress"] = progress_at_step(step)
    # Only a step at least as high as the stored one moves the summary, even if another
    # report landed since the read above.
    newer = or_(TrainingJob.current_step.is_(None), TrainingJob.current_step <= step)
    stmt = update(TrainingJob).where(TrainingJob.id == job_id, newer).values(values)
    db.execute(stmt.execution_options(synchronize_session=False))


def record_metrics(
    db: Session, *, job_id: str, points: Sequence[MetricPoint], now: datetime
) -> int:
    """Store ``points`` of job ``job_id`` and update its summary; returns the steps stored.

    A point already stored for the same step is merged: new values replace, absent keys
    keep what is there. One statement for all points plus one for the summary.
    """
    merged = merge_by_step(points)
    if not merged:
        return 0
    _upsert_points(db, job_id=job_id, rows=list(merged.values()), now=now)
    record_series(db, job_id=job_id, by_step=_series_by_step(points))
    _update_summary(db, job_id=job_id, merged=merged, now=now)
    db.commit()
    return len(merged)


def list_metrics(db: Session, *, job_id: str, after_step: int = 0) -> list[TrainingMetric]:
    """The job's stored points above ``after_step`` (default: every point), by step."""
    query = select(TrainingMetric).where(TrainingMetric.job_id == job_id)
    query = query.where(TrainingMetric.step > after_step)
    return list(db.scalars(query.order_by(TrainingMetric.step)))
