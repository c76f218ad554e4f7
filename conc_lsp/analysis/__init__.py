"""The analysis: pure Python, no LSP types (text -> parse -> facts)."""
