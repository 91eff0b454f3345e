"""`python -m jtransfer ...`: see `jtransfer.cli`."""

import sys

from jtransfer import cli

sys.exit(cli.main())
