"""Can this await be cancelled here, and what would a cancellation skip?

A per-function summary next to the checkpoint verdicts: an awaited callee of
this module that never suspends is no cancellation point, and neither is one
whose checkpoints are all shielded (`with CancelScope(shield=True)` inside
it, or the project's own shield wrapper). Stubs (`...`, `pass`, `raise
NotImplementedError`) and abstract methods are unknown: their overrides
decide. Shared by the cleanup rules.
"""

from __future__ import annotations

import ast

from conc_lsp.analysis.events import Event, EventKind, FunctionFacts, ModuleFacts
from conc_lsp.analysis.libraries import last_name
from conc_lsp.analysis.model import HintKind, Shield, Verdict
from conc_lsp.analysis.reach import awaited_call

# Closing by force is cancellation-safe by design.
CANCEL_SAFE = frozenset({"aclose_forcefully", "cancel_shielded_checkpoint"})
MAX_DEPTH = 4
LOGGER_NAMES = frozenset({"log", "logger", "_log", "_logger", "logging", "LOG", "LOGGER"})
LOGGER_METHODS = frozenset(
    {"debug", "info", "warning", "warn", "error", "exception", "critical", "cancel", "runtime"}
)


def callee_in_module(
    module: ModuleFacts, function: FunctionFacts, call: Event
) -> FunctionFacts | None:
    """The function of this module a call names: `self.stop()`, `cls.stop()`, `stop()`."""
    if not call.method:
        return None
    if call.receiver in ("self", "cls") and function.class_name:
        owner = function.qualname.rsplit(".", 1)[0]
        return module.function(f"{owner}.{call.method}")
    if call.receiver is None:
        return module.function(call.method)
    # `terminated.set()` for a parameter `terminated: EventWrapper` of a class of this module.
    annotated = parameter_classes(function).get(call.receiver)
    if annotated is not None:
        return module.function(f"{annotated}.{call.method}")
    return None


def parameter_classes(function: FunctionFacts) -> dict[str, str]:
    """Parameters annotated with a plain class name (`conn: Conn`) and locals made
    by calling one (`conn = Conn()`): {"conn": "Conn"}."""
    memo = function.memo.get("parameter-classes")
    if isinstance(memo, dict):
        return memo
    found: dict[str, str] = {}
    arguments = function.node.args
    for argument in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs):
        annotation = argument.annotation
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            text = annotation.value
        elif isinstance(annotation, ast.Name):
            text = annotation.id
        else:
            continue
        if text.isidentifier():
            found[argument.arg] = text
    # Locals made from a class: `lifespan = Lifespan(5)`.
    for node in ast.walk(function.node):
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id[:1].isupper()
        ):
            found.setdefault(node.targets[0].id, node.value.func.id)
    function.memo["parameter-classes"] = found
    return found


def is_stub(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """An abstract method or a body of only docstring / `...` / `pass` / `raise`:
    its overrides decide whether it checkpoints."""
    if any(last_name(decorator_name(item)) == "abstractmethod" for item in node.decorator_list):
        return True
    return all(
        isinstance(statement, (ast.Pass, ast.Raise))
        or (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant))
        for statement in node.body
    )


def decorator_name(decorator: ast.expr) -> str:
    if isinstance(decorator, ast.Call):
        decorator = decorator.func
    if isinstance(decorator, ast.Attribute):
        return decorator.attr
    return decorator.id if isinstance(decorator, ast.Name) else ""


def can_be_cancelled(
    module: ModuleFacts, function: FunctionFacts, checkpoint: Event, depth: int = 0
) -> bool:
    """Whether `Cancelled` can be raised at ``checkpoint`` (an unshielded scope
    being cancelled): not when shielded, not when the awaited callee never
    suspends or checkpoints only under a shield."""
    if checkpoint.context.shielded is Shield.YES:
        return False
    if (
        isinstance(checkpoint.node, ast.Await)
        and module.verdict_of(checkpoint.node, HintKind.AWAIT) is Verdict.NEVER
    ):
        return False
    call = awaited_call(function, checkpoint)
    if call is None:
        return True
    if last_name(call.callee) in CANCEL_SAFE:
        return False
    target = callee_in_module(module, function, call)
    if target is None or not target.is_async or is_stub(target.node) or depth >= MAX_DEPTH:
        return True
    if target is function:
        return True
    return any(can_be_cancelled(module, target, inner, depth + 1) for inner in target.checkpoints)


def suspends(
    module: ModuleFacts, function: FunctionFacts, checkpoint: Event, depth: int = 0
) -> bool:
    """Whether another task may run at ``checkpoint``: not when the awaited callee
    is an `async def` of this module whose body never suspends (it only sets an
    event, fills a dict, ...), nor when resolution found it never yields."""
    if (
        isinstance(checkpoint.node, ast.Await)
        and module.verdict_of(checkpoint.node, HintKind.AWAIT) is Verdict.NEVER
    ):
        return False
    call = awaited_call(function, checkpoint)
    if call is None:
        return True
    target = callee_in_module(module, function, call) or _private_method(module, call)
    if (
        target is None
        or target is function
        or not target.is_async
        or is_stub(target.node)
        or depth >= MAX_DEPTH
    ):
        return True
    return any(suspends(module, target, inner, depth + 1) for inner in target.checkpoints)


def _private_method(module: ModuleFacts, call: Event) -> FunctionFacts | None:
    """`item._notify()` on an object of unknown type: the one function of this module
    with that private name (a private name is rarely shared with another module)."""
    name = call.method or ""
    if not name.startswith("_") or name.startswith("__") or call.receiver is None:
        return None
    found = module.functions_named(name)
    return found[0] if len(found) == 1 else None


def is_logging(call: Event) -> bool:
    """`log.warning(...)`, `self._log.cancel(...)`, `logging.info(...)`, `print(...)`."""
    if call.receiver is None and call.method in ("print", "warn"):
        return True
    receiver = (call.receiver or "").rsplit(".", 1)[-1]
    return receiver in LOGGER_NAMES or (call.method in LOGGER_METHODS and "log" in receiver.lower())


def significant(event: Event) -> bool:
    """Cleanup that a cancellation must not skip: a call (another step: close,
    release, set, forget...), a removal from shared state; not a log line, not
    a flag (`self._closed = True`)."""
    if event.kind is EventKind.CALL:
        return not is_logging(event)
    if event.kind is EventKind.WRITE:
        return event.removal
    return False
