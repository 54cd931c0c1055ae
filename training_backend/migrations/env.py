"""Alembic environment: runs on the connection handed over by ``db.migrate``.

There is no ``alembic.ini``: the backend builds its Alembic config in code
(``training_backend.db.migrate.alembic_config``), so migrations run the same from a
checkout, an installed wheel or any working directory.
"""

from __future__ import annotations

from alembic import context

from training_backend.db import models  # noqa: F401  (registers the tables on Base.metadata)
from training_backend.db.base import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through training_backend.db.migrate.upgrade_database")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
