"""Warnings of the analysis on the "conc_lsp" logger. They are rare (a file
nested deeper than Python's stack), so ``logging`` (and the traceback,
threading and string modules it brings) loads on the first one, not with
every `conc-lsp check`."""

from __future__ import annotations


def warning(message: str, *arguments: object) -> None:
    """``logging.getLogger("conc_lsp").warning``, as if called by the caller."""
    import logging  # loads on the first warning (start-up cost)

    logging.getLogger("conc_lsp").warning(message, *arguments, stacklevel=2)
