"""training-agent: runs fine-tuning jobs from a web platform on this machine's GPUs."""

import json
import sys
from pathlib import Path

__version__ = "0.2.0"

if getattr(sys, "frozen", False):
    # A built executable reports the version packaging/build baked into it.
    try:
        _built = json.loads((Path(__file__).parent / "_build.json").read_text(encoding="utf-8"))
        __version__ = str(_built["version"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
