"""The one error boundary of every entry point (`cliplit` and its subcommands, `train/train.py`).

`run_entry_point(command)` runs `command() -> exit status` and turns every failure into one line on
stderr, `error: <file>: <reason>`:

- a `CLIPLITError` is printed as it is (its message names the file);
- an `OSError` (a full disk, a read-only file system, a vanished folder) names its file and the
  system's reason, without the library chatter around it;
- Ctrl-C or SIGTERM: the write in flight completes (outputs are atomic), later signals are ignored
  while that cleanup runs (so a second Ctrl-C cannot leave a partial file), and the status is 130;
- a closed stdout (`cliplit models | head`) ends quietly: the work goes on, files and reports are
  still written, and what would have been printed is dropped;
- every line on stdout and stderr is written whole, in one write (no thread's line is cut by another's);
- anything else is one line naming its type (`CLIPLIT_DEBUG=1` shows the traceback).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable

from ..errors import CLIPLITError, display_name, first_line

EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130  # as a shell reports a process ended by a signal (128 + SIGINT)
DEBUG_ENV_VAR = "CLIPLIT_DEBUG"
INTERRUPTED_MESSAGE = "interrupted (outputs written so far are complete; rerun the command to finish)"
STOP_SIGNALS = ("SIGINT", "SIGTERM")


class WholeLinesQuietWhenClosed:
    """
    A text stream that writes whole lines, each in one write, and drops what it cannot write once its
    reader has gone (EPIPE) instead of raising.

    `print` and `tqdm.write` write a line's text and its newline separately; on Python's unbuffered
    stderr each is its own write to file descriptor 2. While another thread points that descriptor
    elsewhere for a moment (LibRaw's and encoders' messages are filtered so, `cliplit.safety.native_lines`), a line could be
    cut in two there. Held here until its newline (or a flush: tqdm flushes its bar), a line is written
    whole, before or after such a moment.
    """

    def __init__(self, stream):
        self._stream = stream
        self._partial_line = ""
        self._lock = threading.Lock()  # the threads of one run share the stream
        self.closed_by_reader = False

    def _reader_gone(self) -> None:
        self.closed_by_reader = True
        try:  # later flushes (at exit, by the interpreter) then go nowhere instead of failing again
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass

    def _guarded(self, operation: Callable[[], object]) -> None:
        """Run `operation` on the stream; a reader that has gone turns it (and all later ones) into nothing."""
        try:
            operation()
        except BrokenPipeError:
            self._reader_gone()
        except ValueError:
            if not getattr(self._stream, "closed", False):
                raise  # not a closed stream (an encoding error, say): not ours to hide
            self.closed_by_reader = True

    def write(self, text: str) -> int:
        with self._lock:
            if self.closed_by_reader:
                return len(text)
            lines, newline, self._partial_line = (self._partial_line + text).rpartition("\n")
            if newline:
                self._guarded(lambda: self._stream.write(lines + newline))
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self.closed_by_reader:
                return
            pending, self._partial_line = self._partial_line, ""
            if pending:
                self._guarded(lambda: self._stream.write(pending))
            if not self.closed_by_reader:
                self._guarded(self._stream.flush)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def describe_os_error(error: OSError) -> str:
    """`<file>: <reason>` for an OSError (its second file too, for a rename)."""
    reason = error.strerror or first_line(error)
    names = [display_name(n) for n in (error.filename, error.filename2) if n is not None]
    return f"{' -> '.join(names)}: {reason}" if names else reason


class _StopOnce:
    """The first stop signal raises KeyboardInterrupt; the ones after it are ignored while the run cleans up."""

    def __init__(self):
        self.stopping = False

    def __call__(self, signum, frame):
        if self.stopping:
            return
        self.stopping = True
        for name in STOP_SIGNALS:  # ignored by the system itself: also while the interpreter shuts down
            signal.signal(getattr(signal, name), signal.SIG_IGN)
        raise KeyboardInterrupt


def run_entry_point(command: Callable[[], int | None], failure_status: int = EXIT_FAILURE) -> int:
    """Run `command` inside the boundary; returns its exit status, `failure_status` when it failed (see the
    module docstring)."""
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = {}
    if on_main_thread:
        handler = _StopOnce()
        for name in STOP_SIGNALS:
            number = getattr(signal, name)
            previous[number] = signal.signal(number, handler)
    streams = {name: getattr(sys, name) for name in ("stdout", "stderr")}
    for name, stream in streams.items():
        if not isinstance(stream, WholeLinesQuietWhenClosed):
            setattr(sys, name, WholeLinesQuietWhenClosed(stream))
    try:
        try:
            status = command()
        finally:
            sys.stdout.flush()
        return 0 if status is None else status
    except CLIPLITError as error:
        print(f"error: {error}", file=sys.stderr)
        return failure_status
    except KeyboardInterrupt:
        print(f"error: {INTERRUPTED_MESSAGE}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as error:
        print(f"error: {describe_os_error(error)}", file=sys.stderr)
        return failure_status
    except MemoryError:
        print("error: out of memory (try a smaller --tile-size, or fewer or smaller images)", file=sys.stderr)
        return failure_status
    except Exception as error:  # noqa: BLE001 - the boundary: one line, never a traceback
        if os.environ.get(DEBUG_ENV_VAR):
            raise
        print(f"error: {type(error).__name__}: {first_line(error)} (set {DEBUG_ENV_VAR}=1 for the traceback)", file=sys.stderr)
        return failure_status
    finally:
        for name, stream in streams.items():
            current = getattr(sys, name)
            current.flush()
            setattr(sys, name, stream)
        if not (previous and handler.stopping):  # once stopping, later signals stay ignored until the process ends
            for number, earlier in previous.items():
                signal.signal(number, earlier)


__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "WholeLinesQuietWhenClosed", "describe_os_error", "run_entry_point"]
