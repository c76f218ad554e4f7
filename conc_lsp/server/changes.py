"""``didChange`` notifications that the strict converter refuses.

pygls drops a notification whose parameters do not validate, silently for
the user: a ``version: null`` or a negative position would lose the whole
change and the server's text would drift from the client's until the next
full-text change. Such a change is repaired as far as it can be (negative
line or character clamped to 0, as a position past the end is clamped to
the end; a missing version kept as unknown) and applied, with a warning.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from cattrs import Converter
from lsprotocol import types

logger = logging.getLogger("conc_lsp")
LARGEST = 2**31 - 1  # LSP's uinteger


def structure_did_change(
    converter: Converter, data: dict[str, Any]
) -> types.DidChangeTextDocumentNotification:
    """The notification as pygls expects it, repaired when it does not validate."""
    try:
        return converter.structure(data, types.DidChangeTextDocumentNotification)
    except Exception:  # noqa: BLE001 - any validation error: repair below
        pass
    repaired, problems, unknown_version = _repaired(data)
    try:
        message = converter.structure(repaired, types.DidChangeTextDocumentNotification)
    except Exception:
        logger.error(
            "didChange could not be read, the document may now differ from the editor's: %s",
            str(data)[:500],
        )
        raise
    if unknown_version:
        # The field is typed int; None says "unknown" to the rest of the server.
        object.__setattr__(message.params.text_document, "version", None)
    uri = message.params.text_document.uri
    logger.warning("didChange for %s repaired and applied: %s", uri, "; ".join(problems))
    return message


def _repaired(data: dict[str, Any]) -> tuple[dict[str, Any], list[str], bool]:
    repaired = copy.deepcopy(data)
    problems: list[str] = []
    params = repaired.get("params")
    if not isinstance(params, dict):
        return repaired, problems, False
    unknown_version = False
    identifier = params.get("textDocument")
    if isinstance(identifier, dict):
        version = identifier.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            problems.append(f"version {version!r} is not an integer, kept as unknown")
            identifier["version"] = 0
            unknown_version = True
    changes = params.get("contentChanges")
    for number, change in enumerate(changes if isinstance(changes, list) else []):
        range_ = change.get("range") if isinstance(change, dict) else None
        if not isinstance(range_, dict):
            continue
        for side in ("start", "end"):
            position = range_.get(side)
            if not isinstance(position, dict):
                continue
            for field in ("line", "character"):
                value = position.get(field)
                if isinstance(value, int) and not 0 <= value <= LARGEST:
                    clamped = min(max(value, 0), LARGEST)
                    problems.append(f"change {number}: {side} {field} {value} clamped to {clamped}")
                    position[field] = clamped
    return repaired, problems, unknown_version
