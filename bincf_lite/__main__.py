"""``python -m bincf_lite`` runs the ``bincf-lite`` command."""

import sys

from .cli import main

sys.exit(main())
