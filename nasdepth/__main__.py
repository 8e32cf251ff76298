"""``python -m nasdepth`` runs the CLI."""

import sys

from nasdepth.cli import main

sys.exit(main())
