"""CONC104 shielded-wait-without-deadline

## What it does
Flags a wait (`Event.wait()`, `Process.wait()`, a channel's `receive()`,
`join()`, `sleep_forever()`, any `wait*` call) inside a shielded cancel scope
(`CancelScope(shield=True)`, `cs.shield = True`, a nursery's
`cancel_scope.shield = True`, a project's shield wrapper) that has no
deadline, outside cleanup code (a wait in a `finally`, an `except` handler or
a teardown is CONC101's).

Not flagged: a wait whose scope (or an inner one) has a deadline
(`move_on_after(5, shield=True)`, `CancelScope(shield=True, deadline=...)`);
a wait after the waited object was killed or closed (`proc.kill()` then
`await proc.wait()`); a wait whose `.set()` runs in a `finally`.

## Why is this bad?
A shield blocks every cancellation from outside: neither a timeout around
the caller nor the shutdown of the whole task tree can interrupt the wait.
If what it waits for never happens (the other task crashed, the process
hangs), the task hangs forever, and so does every scope that waits for it:
the teardown of the whole program.

## Example
```python
with trio.CancelScope(shield=True):
    await proc.wait()
```

## Use instead
```python
with trio.move_on_after(5, shield=True) as cs:
    await proc.wait()
if cs.cancelled_caught:
    proc.kill()
```

## Fix
Wrap the wait in a bounded, shielded scope (`move_on_after(T, shield=True)`,
`T` from `fixes.cleanup-timeout`). Safe: only the unbounded wait changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from conc_lsp.analysis.events import Event, FunctionFacts, ModuleFacts
from conc_lsp.analysis.model import Fix, Shield, Verdict
from conc_lsp.analysis.program import Program
from conc_lsp.analysis.waits import (
    guaranteed_setter,
    setters_in_finally,
    waiting_call,
)
from conc_lsp.fixes.context import FixContext
from conc_lsp.rules.base import Detection, Evidence, Rule, Words, checkpoint_verdict, describe
from conc_lsp.rules.story import Trace, TraceBuilder


@dataclass(frozen=True, slots=True)
class ShieldedWait(Evidence):
    """A wait under a shield with no deadline."""

    checkpoint: Event
    call: Event


def _check(rule: Rule, module: ModuleFacts) -> Iterator[Detection]:
    setters = setters_in_finally(module)
    for function in module.functions:
        for checkpoint in function.checkpoints:
            context = checkpoint.context
            if context.shielded is not Shield.YES or context.bounded or checkpoint.exit:
                continue
            if context.on_cleanup_path:
                continue  # CONC101's ground
            call = waiting_call(module, function, checkpoint)
            if call is None:
                continue
            if checkpoint_verdict(module, function, checkpoint) is Verdict.NEVER:
                continue
            if guaranteed_setter(setters, function, call) is not None:
                continue
            waited = describe(call, "the wait")
            yield rule.detect(
                function,
                checkpoint.location,
                f"`await {waited}` is shielded and has no deadline: no cancellation can "
                "interrupt it, so if it never completes the task and every scope waiting "
                "for it hang; give the shield a deadline",
                ShieldedWait(checkpoint, call),
            )


class ShieldedWaitWithoutDeadline(Rule):
    code = "CONC104"
    name = "shielded-wait-without-deadline"
    category = "deadlock"
    explanation = (
        "a shielded wait with no deadline cannot be interrupted: if it never completes, "
        "the teardown of everything above it hangs."
    )
    effort = "simple"
    sketch_title = "Give the shielded wait a deadline"
    brief = "a wait in a shielded cancel scope with no deadline, outside cleanup code"
    fixes_offered = (("wrap the wait in `move_on_after(T, shield=True)`", "safe"),)
    rank = 6.5
    opt_in = True
    opt_in_reason = (
        "precision on unseen real code 0.00 (round 3: 0 true, 1 deliberate, 1 wrong; "
        "round 4 the same)"
    )

    def check(self, module: ModuleFacts) -> Iterator[Detection]:
        return _check(self, module)

    def fix(self, detection: Detection, module: ModuleFacts, context: FixContext) -> Fix | None:
        from conc_lsp.fixes import cleanup  # libcst loads only when fixing (start-up cost)

        return cleanup.bound_wait(detection.finding, module, context)

    def trace(
        self, program: Program, b: TraceBuilder, function: FunctionFacts, detection: Detection
    ) -> Trace | None:
        evidence = detection.evidence
        if not isinstance(evidence, ShieldedWait):
            return None
        line = evidence.checkpoint.location.line
        b.add("Task A", line, "waits under a shield, with no deadline", "wait")
        b.add("Task B", None, "would end the wait, but crashed or hangs", "stuck")
        b.add("Task C", None, "cancels the scope around Task A (timeout, shutdown)", "cancel")
        b.add("Task A", line, "the shield blocks the cancellation: still waiting", "hang")
        return b.build(
            [f"Task A runs `{function.qualname}`; Task B is what it waits for."],
            (b.roles["wait"], b.roles["hang"]),
            "nothing can interrupt the wait",
        )

    def words(self, evidence: Evidence, trace: Trace) -> Words:
        s = trace.steps_text
        return Words(
            f"The shield gets a deadline: {s('hang')} becomes 'gives up after T seconds'.",
            "A wait that needs longer than T is cut short (log it, kill what it waits for).",
            "T must be longer than a normal wait; removing the shield instead lets any outer "
            "cancellation cut the wait short.",
        )


RULE = ShieldedWaitWithoutDeadline()
