"""The analysis's warnings (code too deep to walk), on the "conc_lsp" logger.

`logging` (with `threading` and `traceback`) loads only when a warning is
logged: most runs log none, and `conc-lsp check` pays for every import at
start-up.
"""

from __future__ import annotations


def warn(message: str, *arguments: object) -> None:
    """Log a warning on the "conc_lsp" logger (%-style ``arguments``)."""
    import logging  # start-up cost: only when there is something to log

    logging.getLogger("conc_lsp").warning(message, *arguments)
