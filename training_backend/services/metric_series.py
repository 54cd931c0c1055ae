"""The ``extra`` series of metric points (feature ``metrics_extra``): stored one value a
row, keyed by ``(job, step, name)``, and read back grouped by step."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from training_backend.db.models import MetricSeries
from training_backend.db.upsert import insert_for


def record_series(db: Session, *, job_id: str, by_step: Mapping[int, Mapping[str, float]]) -> None:
    """Store each step's series; a name sent again for a step replaces its value."""
    rows = [
        {"job_id": job_id, "step": step, "name": name, "value": value}
        for step, series in by_step.items()
        for name, value in series.items()
    ]
    if not rows:
        return
    stmt = insert_for(db, MetricSeries.__table__)
    stmt = stmt.on_conflict_do_update(
        index_elements=["job_id", "step", "name"], set_={"value": stmt.excluded.value}
    )
    db.execute(stmt, rows)


def series_by_step(db: Session, *, job_id: str, after_step: int = 0) -> dict[int, dict[str, float]]:
    """The job's series above ``after_step``: ``{step: {name: value}}``, names sorted."""
    query = select(MetricSeries).where(MetricSeries.job_id == job_id)
    query = query.where(MetricSeries.step > after_step)
    query = query.order_by(MetricSeries.step, MetricSeries.name)
    found: dict[int, dict[str, float]] = {}
    for row in db.scalars(query):
        found.setdefault(row.step, {})[row.name] = row.value
    return found
