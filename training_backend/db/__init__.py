"""The database: models, engine and migrations."""

from training_backend.db.engine import create_db_engine, create_session_factory
from training_backend.db.migrate import upgrade_database

__all__ = ["create_db_engine", "create_session_factory", "upgrade_database"]
