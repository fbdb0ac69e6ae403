"""Libraries' own messages kept out of cliplit's one-line messages: native libraries' lines on stderr,
and the warnings Pillow prints while it reads a file.

LibRaw ("<file>: Unexpected end of file"), libpng inside OpenCV ("libpng error: Incorrect data in iCCP")
and OpenCV's logger ("[ERROR:0@1.063] global loadsave.cpp ...") print on the process's stderr, file
descriptor 2, where Python cannot catch them. While such a library runs, `native_lines_dropped` points
descriptor 2 to a temporary file; afterwards everything written there is passed on, except the lines
the caller names as the library's. Nothing is flushed here: a flush would write out another thread's
half-written line. The entry points write each line whole (`cliplit.safety.boundary`), so a line of
another thread lands before or in that file, never cut.

Pillow warns (Python warnings, two lines each) about what it meets in a file: an image over its own pixel
limit (`DecompressionBombWarning`, which cliplit's `--max-megapixels` supersedes), corrupt EXIF, ... A
file cliplit cannot use is reported in its own one line, and what it leaves out with a `note:`, so
`pillow_warnings_ignored` silences those warnings while a file is read. `warnings.catch_warnings` is not
thread-safe: cliplit's reader threads take turns (a lock), and warnings from other code still show.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import warnings
from collections.abc import Callable

OPENCV_LINE_PREFIXES = (b"libpng ", b"[ERROR:", b"[ WARN:", b"[ INFO:", b"[DEBUG:")  # libpng's handlers, OpenCV's logger
STDERR_FD = 2
PILLOW_MODULES = r"PIL(\.|$)"  # warnings raised in Pillow's modules
_STDERR_LOCK = threading.Lock()  # one redirection of file descriptor 2 at a time
_WARNINGS_LOCK = threading.Lock()  # one change of the warning filters at a time


def is_opencv_line(line: bytes) -> bool:
    """A line that OpenCV or the libpng inside it printed (an empty line ends OpenCV's error messages)."""
    return line.startswith(OPENCV_LINE_PREFIXES) or not line.strip()


@contextlib.contextmanager
def native_lines_dropped(is_library_line: Callable[[bytes], bool]):
    """Run the block with file descriptor 2 captured; pass on afterwards every captured line for which
    `is_library_line(line)` is false."""
    stderr_fd = STDERR_FD  # where native code writes, whatever `sys.stderr` is (a notebook's or a test's stream)
    try:
        os.fstat(stderr_fd)
    except OSError:  # no file descriptor 2 (a daemon): nothing to filter
        yield
        return
    with _STDERR_LOCK, tempfile.TemporaryFile() as captured:
        saved = os.dup(stderr_fd)
        os.dup2(captured.fileno(), stderr_fd)
        try:
            yield
        finally:
            os.dup2(saved, stderr_fd)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().splitlines(keepends=True) if not is_library_line(line)]
            if kept:
                os.write(stderr_fd, b"".join(kept))


@contextlib.contextmanager
def pillow_warnings_ignored():
    """Run the block without the warnings Pillow's modules raise (`DecompressionBombWarning` included)."""
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=PILLOW_MODULES)
        yield


__all__ = ["is_opencv_line", "native_lines_dropped", "pillow_warnings_ignored"]
