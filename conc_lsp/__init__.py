"""conc-lsp: a language server that makes async checkpoints visible."""

__version__ = "0.1.0"
