"""Runs jobs as child processes: ``JobRunner`` takes a claimed job to its ``JobOutcome``.

Modules: ``process`` (spawn, kill ladder, orphan sweep), ``lines`` (output to log lines),
``workspace`` (job dir and environment), ``plan`` (config to argv), ``events`` (the
trainer's events file), ``runner`` (one job's lifecycle).
"""

from training_agent.executor.runner import JobRunner

__all__ = ["JobRunner"]
