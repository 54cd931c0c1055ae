"""``python -m training_agent`` runs the CLI."""

from training_agent.cli import main

raise SystemExit(main())
