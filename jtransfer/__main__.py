"""`python -m jtransfer ...`: see `jtransfer.cli.main`."""

import sys

from jtransfer.cli import main as cli

sys.exit(cli.main())
