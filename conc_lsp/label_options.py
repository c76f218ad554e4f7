"""The choices of the `hints.*` settings, which the settings and the command
line check without loading the labels themselves (start-up cost of a run
that the cache answers)."""

from __future__ import annotations

ARROW = "arrow"
COMPACT = "compact"
LABEL_STYLES = (ARROW, COMPACT)

# hints.show: "context" shows what changes the reader's mind, "all" the whole map.
SHOW_CONTEXT = "context"
SHOW_ALL = "all"
SHOW_MODES = (SHOW_CONTEXT, SHOW_ALL)

DEFAULT_MAX_LENGTH = 32  # characters; 0: no cap. Keeps `<- teardown · shielded · bounded` whole
