"""The frozen executable's entry point (an absolute import: PyInstaller runs this as __main__)."""

from training_agent.cli import main

raise SystemExit(main())
