"""``python -m vpf_spiking.cli``: the same as the ``vpf`` command."""

import sys

from .main import main

sys.exit(main())
