"""`python -m conc_lsp` runs the command line."""

import sys

from conc_lsp.cli import main

sys.exit(main())
