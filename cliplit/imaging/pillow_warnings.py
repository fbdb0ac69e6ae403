"""Pillow's warnings kept out of cliplit's one-line messages while a file is read.

Pillow warns (Python warnings, two lines each on stderr) about what it meets in a file: an image over its
own pixel limit (`DecompressionBombWarning`, which `--max-megapixels` supersedes with its one-line
error), corrupt EXIF, ... cliplit reports a file it cannot use in one line, and what it leaves out of one
with a `note:`, so these warnings say nothing more. `warnings.catch_warnings` is not thread-safe: the
reader threads take turns (a lock), and warnings raised outside Pillow's modules still show.
"""

from __future__ import annotations

import contextlib
import threading
import warnings

PILLOW_MODULES = r"PIL(\.|$)"  # warnings raised in Pillow's modules
_WARNINGS_LOCK = threading.RLock()  # one change of the warning filters at a time (re-entered by nested reads)


@contextlib.contextmanager
def pillow_warnings_ignored():
    """Run the block without the warnings that Pillow's modules raise (`DecompressionBombWarning` included)."""
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=PILLOW_MODULES)
        yield


__all__ = ["pillow_warnings_ignored"]
