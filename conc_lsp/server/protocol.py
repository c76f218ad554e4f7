"""JSON-RPC by the book, where pygls 2 is not.

pygls turns each message into an lsprotocol object inside ``json.loads``; a
request whose params do not fit its method raised there and was never
answered. Here it becomes a `RejectedRequest`, answered with InvalidParams.
After `shutdown` every request but `exit` is answered with InvalidRequest
(pygls dropped them); `shutdown` cancels the requests in flight and lets their
answers go out before its own; `exit` only records the exit code, and the
message loop (`transport`) ends the session.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from typing import Any, TypeGuard

import attrs
from cattrs import ClassValidationError, Converter, transform_error
from lsprotocol import types
from pygls.protocol import LanguageServerProtocol, default_converter
from pygls.protocol.json_rpc import (
    JsonRPCNotification,
    JsonRPCRequestMessage,
    JsonRPCResponseMessage,
    RPCRequest,
)
from pygls.protocol.language_server import lsp_method

from conc_lsp.server import changes

logger = logging.getLogger("conc_lsp")

# How long `shutdown` waits for the cancelled requests to answer: a bound for
# a handler that ignores its cancellation, never reached by ours.
CANCEL_GRACE = 5.0
SHOWN_PROBLEMS = 3  # of a message's misfits, in the log and the error answer


@attrs.define
class RejectedRequest:
    """A request whose params do not fit its method: answered, never handled."""

    id: int | str
    method: str
    error: types.ResponseError
    jsonrpc: str = "2.0"


@attrs.define
class DroppedMessage:
    """A notification or response that could not be read (already logged)."""

    jsonrpc: str = "2.0"


def _strict_int(value: object, cls: type[int]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value if cls is int else cls(value)  # an IntEnum: cattrs's own way


def _strict_bool(value: object, _type: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


def strict_converter() -> Converter:
    """pygls's converter, without cattrs's ``int(value)``: a line sent as "1"
    or 1.5 is invalid params, not line 1."""
    converter: Converter = default_converter()  # type: ignore[no-untyped-call]
    # By class, the int hook also serves the IntEnums (bool has its own).
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(bool, _strict_bool)
    return converter


def _problem(error: Exception) -> str:
    """One line on what did not fit, e.g. 'invalid value @ $.params.position'."""
    if isinstance(error, ClassValidationError):
        problems = transform_error(error)
        more = (
            f"; and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
        )
        return "; ".join(problems[:SHOWN_PROBLEMS]) + more
    return f"{type(error).__name__}: {error}"


def _is_request_id(value: object) -> TypeGuard[int | str]:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


class ConcProtocol(LanguageServerProtocol):
    """pygls's protocol with the rules above, and without pygls's document
    copy: it splits lines like ``str.splitlines`` (at form feeds and U+2028),
    which LSP does not, so the server keeps the text itself."""

    exit_code: int | None = None  # set by `exit`: the message loop stops
    # The response to `initialize` that early_init already sent: not sent twice.
    early_answer: dict[str, Any] | None = None

    @property
    def shut_down(self) -> bool:
        """`shutdown` was received."""
        return self._shutdown

    # -- reading messages -------------------------------------------------

    def structure_message(self, data: dict[str, Any]) -> Any:
        """``json.loads``'s object hook: a whole message becomes an lsprotocol
        object; what does not fit becomes an answer, or is logged and dropped."""
        if "jsonrpc" not in data:
            return data  # a nested object: structured with its message
        method = data.get("method")
        if method == types.TEXT_DOCUMENT_DID_CHANGE and "id" not in data:
            return changes.structure_did_change(self._converter, data)  # never dropped
        try:
            return self._converter.structure(data, self._message_type(data))
        except Exception as error:  # noqa: BLE001 - any misfit is the client's
            problem = _problem(error)
        request_id = data.get("id")
        if isinstance(method, str) and _is_request_id(request_id):
            logger.error("%s request %r: invalid params: %s", method, request_id, problem)
            return RejectedRequest(
                id=request_id,
                method=method,
                error=types.ResponseError(
                    code=types.ErrorCodes.InvalidParams,
                    message=f"{method}: invalid params: {problem}",
                ),
            )
        if method is None and _is_request_id(request_id) and "error" not in data:
            # A response of the client we cannot read: fail its waiter, not the session.
            logger.error("unreadable response to request %r: %s", request_id, problem)
            return types.ResponseErrorMessage(
                id=request_id,
                error=types.ResponseError(code=types.ErrorCodes.InvalidParams, message=problem),
            )
        logger.error("dropped message %s: %s", method or "(no method)", problem)
        return DroppedMessage()

    def _message_type(self, data: dict[str, Any]) -> type[Any]:
        """The lsprotocol type of a message (pygls's choice, made explicit)."""
        method = data.get("method")
        known = self.get_message_type(method) if isinstance(method, str) else None
        if "id" not in data:
            return known or JsonRPCNotification
        if "error" in data:
            return types.ResponseErrorMessage
        if method is not None:
            return known or JsonRPCRequestMessage
        return self._result_types.pop(data["id"], None) or JsonRPCResponseMessage

    def answer_parse_error(self, problem: str) -> None:
        """JSON-RPC's answer to a body that is not JSON: no id can be read, so
        ``"id": null`` (written out: lsprotocol would leave the None out)."""
        error = {"code": types.ErrorCodes.ParseError.value, "message": problem}
        self._send_data({"jsonrpc": self.VERSION, "id": None, "error": error})

    def handle_message(self, message: Any) -> None:
        if isinstance(message, DroppedMessage):
            return
        if isinstance(message, RejectedRequest):
            self._send_response(message.id, error=message.error)
            return
        if not hasattr(message, "jsonrpc"):
            logger.error("dropped a message that is not a JSON-RPC object: %.200r", message)
            return
        if self._shutdown and isinstance(message, RPCRequest) and message.method != types.EXIT:
            self._send_response(
                message.id,
                error=types.ResponseError(
                    code=types.ErrorCodes.InvalidRequest,
                    message=f"{message.method}: the server is shut down",
                ),
            )
            return
        super().handle_message(message)

    def _send_data(self, data: Any) -> None:
        early = self.early_answer
        if (
            early is not None
            and (hasattr(data, "result") or hasattr(data, "error"))
            and type(getattr(data, "id", None)) is type(early["id"])
            and data.id == early["id"]
        ):
            self.early_answer = None
            ours = json.loads(json.dumps(data, default=self._serialize_message))
            if ours != early:  # a bug of early_init (its test compares the two)
                logger.error("initialize was answered early with %s, not %s", early, ours)
            else:
                logger.info("initialize: answered before the server loaded (early_init)")
            return
        super()._send_data(data)

    # -- the end of a session ---------------------------------------------

    def cancel_requests(self) -> list[asyncio.Future[Any]]:
        """Cancel the client's requests in flight (but the current one); each is
        answered RequestCancelled once its task ends. Returns those tasks."""
        current = self.msg_id
        tasks: list[asyncio.Future[Any]] = []
        # A copy: cancelling a request runs callbacks that remove it from the table.
        # In order: a generator's request before the task it waits for, which
        # pygls would otherwise resume with the CancelledError (a traceback).
        for msg_id, future in list(self._request_futures.items()):
            # Requests we sent to the client are left to its answer.
            if msg_id == current or msg_id in self._result_types or future.done():
                continue
            future.cancel()
            if isinstance(future, asyncio.Future):
                tasks.append(future)
        return tasks

    # pygls's own handlers are generators; a coroutine runs as well.
    @lsp_method(types.SHUTDOWN)
    async def lsp_shutdown(self, *args: Any) -> None:  # type: ignore[override]
        """Refuse new requests, cancel those in flight (their answers go out
        first), then let the server stop its workers."""
        self._shutdown = True
        cancelled = self.cancel_requests()
        if cancelled:
            await asyncio.wait(cancelled, timeout=CANCEL_GRACE)
            await asyncio.sleep(0)  # their done callbacks send the answers
        if (handler := self.fm.features.get(types.SHUTDOWN)) is not None:
            result = handler(*args)
            if inspect.isawaitable(result):
                await result

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> None:  # type: ignore[override]
        """0 after `shutdown`, 1 without: the message loop ends on it."""
        self.exit_code = 0 if self._shutdown else 1

    # -- documents: the server keeps the text -----------------------------

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams) -> Any:
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_OPEN)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams) -> Any:
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams) -> Any:
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CLOSE)) is not None:
            yield handler, (params,), None
