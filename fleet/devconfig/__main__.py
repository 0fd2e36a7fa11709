"""python -m fleet.devconfig: see fleet/devconfig/cli.py."""

import sys

from fleet.devconfig.cli import run

sys.exit(run(sys.argv[1:]))
