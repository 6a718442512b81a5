"""``python -m spikemod``: the same command line as ``spikemod``."""

import sys

from .cli import main

sys.exit(main())
