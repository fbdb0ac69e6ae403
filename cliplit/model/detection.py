"""Whether a file is a CLIP-LIT checkpoint, told from its tensor names alone (no torch, nothing unpickled,
no tensor read), so that a folder of other models (ComfyUI's `models/upscale_models`) can be sorted
cheaply. A file that passes is still checked in full when it is loaded.

- `.safetensors`: the names in its header (`cliplit.model.cache.read_safetensors_header`);
- `.pth` and the other `torch.save` files: the names are strings in the pickle of the state dict
  (`<archive>/data.pkl` in the zip format of torch >= 1.6; the start of the file in the legacy format),
  looked for as bytes.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from ..errors import CLIPLITError
from .architecture import AUTHOR_CHECKPOINT_SUFFIXES, SAFETENSORS_SUFFIX

DATA_PARALLEL_PREFIX = "module."  # what `nn.DataParallel` puts before every key (the authors' files have it)
# Keys that only this network has, in the authors' naming (`model_small.py`) and in ours.
AUTHOR_KEYS = ("cond1.weight", "ResidualBlock1.conv1.weight", "ResidualBlock6.conv2.weight", "PPM1.features.0.1.weight",
               "PPM1.fuse.0.weight", "condx.weight", "condy.weight", "cond_add1.weight")
CLIPLIT_KEYS = ("stem.weight", "encoder_blocks.0.conv1.weight", "pyramid_pooling.stages.0.conv.weight",
                "pyramid_pooling.fuse_conv.weight", "expand.weight", "middle_blocks.0.conv1.weight", "reduce.weight",
                "decoder_blocks.1.conv2.weight", "illumination_head.weight")
PICKLE_MEMBER = "data.pkl"
LEGACY_PICKLE_BYTES = 16 << 20  # a legacy torch.save file pickles its state dict's names before the tensors


def _has_network_keys(contains) -> bool:
    """Whether `contains(key)` holds for every key of one naming (the authors' or ours)."""
    return any(all(contains(key) for key in keys) for keys in (AUTHOR_KEYS, CLIPLIT_KEYS))


def _pickled_names(path: Path) -> bytes:
    """The bytes in which a `torch.save` file pickles its state dict (its keys among them)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            member = next((name for name in archive.namelist() if name.endswith("/" + PICKLE_MEMBER)), None)
            return archive.read(member) if member is not None else b""
    with open(path, "rb") as handle:
        return handle.read(LEGACY_PICKLE_BYTES)


def is_cliplit_checkpoint(path: str | os.PathLike) -> bool:
    """Whether the regular file `path` (.safetensors, .pth, .pt, .ckpt, .bin) holds a CLIP-LIT network's tensor
    names (authors' or ours, with or without `nn.DataParallel`'s `module.` prefix). False for anything unreadable."""
    from ..safety.reading import is_regular_file
    from .cache import read_safetensors_header

    path = Path(path)
    suffix = path.suffix.lower()
    if not is_regular_file(path):
        return False
    try:
        if suffix == SAFETENSORS_SUFFIX:
            names = {name.removeprefix(DATA_PARALLEL_PREFIX) for name in read_safetensors_header(path)}
            return _has_network_keys(names.__contains__)
        if suffix in AUTHOR_CHECKPOINT_SUFFIXES:
            pickled = _pickled_names(path)
            return _has_network_keys(lambda key: key.encode() in pickled)
    except (OSError, zipfile.BadZipFile, CLIPLITError):
        return False
    return False


__all__ = ["AUTHOR_KEYS", "CLIPLIT_KEYS", "DATA_PARALLEL_PREFIX", "is_cliplit_checkpoint"]
