"""Each rule's module, and whether the rule is opt-in, without importing it:
a run loads only the rules it runs (start-up cost: `conc-lsp check` runs three
of sixteen by default). ``tests/test_architecture.py`` checks this table
against the rules themselves; when the folder holds a module the table does
not name, every rule loads as before, so a stale table costs time, never a
finding."""

from __future__ import annotations

# code -> (module in conc_lsp/rules, opt-in), in code order
RULES: dict[str, tuple[str, bool]] = {
    "CONC101": ("conc101_unbounded_wait_in_cleanup", True),
    "CONC102": ("conc102_unshielded_await_in_cleanup", True),
    "CONC103": ("conc103_await_in_except", True),
    "CONC104": ("conc104_shielded_wait_without_deadline", True),
    "CONC105": ("conc105_teardown_not_in_finally", True),
    "CONC110": ("conc110_timeout_without_checkpoint", False),
    "CONC111": ("conc111_no_guaranteed_checkpoint", True),
    "CONC201": ("conc201_atomicity_gap", True),
    "CONC202": ("conc202_check_then_act", True),
    "CONC203": ("conc203_global_counter_for_keyed_state", True),
    "CONC204": ("conc204_lock_outlived_by_state", False),
    "CONC205": ("conc205_one_lock_many_keys", True),
    "CONC301": ("conc301_set_then_mutate", True),
    "CONC302": ("conc302_set_not_guaranteed", True),
    "CONC303": ("conc303_discarded_task", True),
    "CONC401": ("conc401_undrained_pipe", False),
}
