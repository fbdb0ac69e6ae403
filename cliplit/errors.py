"""Errors that cliplit reports to users as one line (no traceback)."""


class CLIPLITError(Exception):
    """Base class: its message is complete on one line and names the file involved."""


class ImageReadError(CLIPLITError):
    """An input could not be read as an image."""


class CheckpointError(CLIPLITError):
    """A checkpoint file is missing, unsafe, or not a CLIP-LIT enhancement checkpoint."""


class ModelNotFoundError(CLIPLITError):
    """A model id, folder or file could not be resolved or downloaded."""
