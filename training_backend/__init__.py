"""training-backend: the reference backend for training-agent (API, database, web pages)."""

from training_agent import __version__

__all__ = ["__version__"]
