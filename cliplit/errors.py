"""Errors that cliplit reports to users as one line (no traceback)."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty), for one-line reports."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class CLIPLITError(Exception):
    """Base class: its message is complete on one line and names the file involved."""


class ImageReadError(CLIPLITError):
    """An input could not be read as an image."""


class CheckpointError(CLIPLITError):
    """A checkpoint file is missing, unsafe, or not a CLIP-LIT enhancement checkpoint."""


class ModelNotFoundError(CLIPLITError):
    """A model id, folder or file could not be resolved or downloaded."""
