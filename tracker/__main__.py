"""Run the command line with ``python -m tracker``."""

import sys

from tracker.cli import main

sys.exit(main())
