"""`python -m conc_lsp` runs the command line."""

import sys

from conc_lsp.cli import main

if __name__ == "__main__":  # not when a worker process re-imports the main module
    sys.exit(main())
