"""Start the built-in trainer under any Python that has torch: run this file by its path.

    <training_python> /path/to/training_agent/trainers/hf_entry.py --config config.json

The agent starts the trainer this way rather than with ``-m``, so a ``training_python``
that has torch and transformers but not this agent's package still finds the package:
its parent directory is appended to ``sys.path``, after the interpreter's own packages
(what ``training-agent runtime setup`` does with a ``.pth`` file). A Python without
torch then fails the job with the sentence that names ``training-agent runtime setup``.
Only the standard library is used before ``hf.main`` runs.
"""

import sys
from pathlib import Path

_HERE = Path(__file__).resolve()
# Python puts this file's directory first on sys.path (unless PYTHONSAFEPATH is set);
# its modules (demo, tiny...) must not shadow top-level names.
if sys.path and sys.path[0] and Path(sys.path[0]).resolve() == _HERE.parent:
    del sys.path[0]
sys.path.append(str(_HERE.parents[2]))

from training_agent.trainers.hf import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
