"""``python -m training_backend.cli``: the same as the ``training-backend`` command."""

import sys

from training_backend.cli import main

sys.exit(main())
