"""Lines that C libraries print straight to the process's stderr (file descriptor 2), kept out of the output.

Some libraries write their messages themselves, past Python and past FFmpeg's logging: LibRaw its data
errors ("<file>: Unexpected end of file"), SVT-AV1 two dozen "Svt[info]" lines whenever an encoder
opens, x265 its "x265 [error]" lines. Each would add lines to cliplit's one-line reports (and to `-q`).
`without_native_lines(prefixes)` points file descriptor 2 at a temporary file while the library runs,
then passes on everything written there except the lines that start with one of `prefixes`.

Nothing is flushed here: a flush would write out another thread's half-written line. The entry points
write each line whole (`cliplit.safety.boundary.WholeLinesQuietWhenClosed`), so another thread's line
lands before, or in, the temporary file, never cut; what it holds is passed on when the library returns.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator

STDERR_FD = 2  # where C libraries write (their `stderr`), whatever Python's sys.stderr is (a test's capture)
_STDERR_LOCK = threading.Lock()  # one redirection of file descriptor 2 at a time, process-wide


@contextlib.contextmanager
def without_native_lines(prefixes: tuple[bytes, ...]) -> Iterator[None]:
    """While the block runs, lines written to file descriptor 2 that start with one of `prefixes` are dropped
    (the others are passed on when it ends). Without a file descriptor 2 (embedded) nothing is filtered."""
    with _STDERR_LOCK, tempfile.TemporaryFile() as captured:
        try:
            saved = os.dup(STDERR_FD)
        except OSError:  # closed: nothing to filter
            yield
            return
        os.dup2(captured.fileno(), STDERR_FD)
        try:
            yield
        finally:
            os.dup2(saved, STDERR_FD)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().splitlines(keepends=True) if not line.startswith(prefixes)]
            if kept:
                os.write(STDERR_FD, b"".join(kept))


__all__ = ["without_native_lines"]
