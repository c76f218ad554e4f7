"""The rules the tests exercise by default: the default set plus the rules that
became opt-in when their precision on real code was measured below 0.8 (they
still run when selected by code, which is what these tests do)."""

from __future__ import annotations

from conc_lsp.config import Settings

SEED_RULES = (
    "CONC",
    "CONC101",
    "CONC102",
    "CONC103",
    "CONC104",
    "CONC105",
    "CONC201",
    "CONC202",
    "CONC203",
    "CONC301",
    "CONC302",
    "CONC303",
)
SEED_SETTINGS = Settings(select=SEED_RULES)
SELECT_ARGUMENT = ",".join(SEED_RULES)
SEED_PYPROJECT = "[tool.conc-lsp]\nselect = [{}]\n".format(
    ", ".join(f'"{code}"' for code in SEED_RULES)
)
