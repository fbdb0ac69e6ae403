"""The one error hierarchy of cliplit: every error a user sees is a `CLIPLITError` reported on one line.

Messages name the file involved first (`<file>: <reason>`); `display_name` makes a file name safe to
print (control characters such as newlines and terminal escapes are escaped, so a crafted file name
cannot forge or corrupt an error line).
"""

from __future__ import annotations

import os

UNSAFE_LOAD_ADVICE = "weights_only"  # torch's refusals advise retrying with weights_only=False: never relayed
REFUSED_PICKLE = "it holds Python objects other than tensors, which cliplit never loads (no code in a file is run)"


def first_line(error: BaseException) -> str:
    """
    The first line of an exception's message (its type name when the message is empty), for one-line
    reports. A message that mentions `weights_only` (torch's advice to run a file's code) is replaced
    by what it means: the file was refused.
    """
    text = str(error).strip()
    if UNSAFE_LOAD_ADVICE in text or type(error).__name__ == "UnpicklingError":
        return REFUSED_PICKLE
    return text.splitlines()[0] if text else type(error).__name__


def display_name(path: str | os.PathLike) -> str:
    """A file name as it may be printed on one line: printable characters kept, the others escaped."""
    text = os.fspath(path)
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


class CLIPLITError(Exception):
    """Base class: its message is complete on one line and names the file involved."""


class ImageReadError(CLIPLITError):
    """An input could not be read as an image."""


class CheckpointError(CLIPLITError):
    """A checkpoint or model folder is missing, unsafe, or not a CLIP-LIT enhancement model."""


class ModelNotFoundError(CLIPLITError):
    """A model name, id, folder or file could not be resolved or downloaded."""


class SettingsError(CLIPLITError, ValueError):
    """An engine setting or command-line option has a value that cannot be used."""


class DataError(CLIPLITError, ValueError):
    """Bad training data; the message names the file or folder."""


__all__ = [
    "CLIPLITError",
    "CheckpointError",
    "DataError",
    "ImageReadError",
    "ModelNotFoundError",
    "SettingsError",
    "display_name",
    "first_line",
]
