"""The concurrency report: the conc-anal seed's six-part analysis, generated.

For a target (the whole module, a line range, or a function or class by its
qualified name) the report gives, from the flow facts and the rules' findings:

1. the shared state that more than one task can touch, with its writers and
   readers (and the task entry points that reach them) and the lock that
   guards it, or ``UNGUARDED``;
2. every checkpoint and look-alike of the target, per function, in the seed's
   ``L325: await lock.acquire() <- CHECKPOINT`` notation;
3. for each finding, an interleaved trace of two tasks built from the
   finding's evidence, with the race window named by its step numbers;
4. the class of each bug (TOCTOU, stale reference, lifetime mismatch, missing
   guard, atomicity gap; deadlock and ineffective timeout where none of the
   seed's five fits) with the rule that found it;
5. fixes: the rule's quick fix as a unified diff where there is one, a sketch
   otherwise, with the trace steps it removes, trade-offs, risk and effort;
6. a one-paragraph summary on top.

Pure analysis: no LSP types. ``model`` holds the data, ``sections`` the state
table and checkpoint map, ``build`` assembles (the per-rule parts come from
the rules), ``render`` writes markdown or JSON, ``lenses`` the code lens data.
Line references are kept as ``[[L12]]`` tokens in the texts and become links
(``[L12](file.py#L12)``) in markdown and plain ``L12`` in JSON.
"""

from conc_lsp.report.build import build_report
from conc_lsp.report.lenses import LensTarget, lens_targets
from conc_lsp.report.model import FindingReport, Report, StateRow, Target, TargetNotFound
from conc_lsp.report.render import render_markdown, to_json
from conc_lsp.rules.story import unified_diff

__all__ = [
    "FindingReport",
    "LensTarget",
    "Report",
    "StateRow",
    "Target",
    "TargetNotFound",
    "build_report",
    "lens_targets",
    "render_markdown",
    "to_json",
    "unified_diff",
]
