"""Quick fixes: libcst transformations of one function, turned into minimal edits.

Each fix works on the source of the function that holds the finding only
(libcst on a whole file costs seconds), parses it with libcst, transforms
it, and keeps from the result only the lines that changed: comments and
formatting elsewhere are untouched, byte for byte.

A rule's ``fix`` method chooses the transformation and hands it the
evidence it needs (``cleanup.py``, ``state.py``, ``pipes.py``, on ``toolbox.py``); this
package's ``__init__`` imports
nothing heavy, so that reading ``FixContext`` does not load libcst.
"""
