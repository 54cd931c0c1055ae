"""Data functions behind the routes and the CLI: keyword-only, one concern per module."""
