"""The published models' cache, verified (no torch, no transformers: `cliplit models` stays instant).

A cached folder counts as cached only when it verifies: its `config.json` is a CLIP-LIT configuration,
its `model.safetensors` has a well-formed header whose tensors are the network's and fill the file
exactly (a truncated copy fails), and, when the folder records where it came from
(`cliplit_source.json`, written by every conversion into the cache), the recorded checkpoint is the
published one and the weights file is the one converted from it (a foreign or edited file fails).

`add_published_model` puts a published model in place from a local copy of its checkpoint: the
sha256 is checked against the published one, the file is kept in the cache's downloads (so the
cache can heal itself later) and converted atomically into the cache.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

from ..errors import CheckpointError, ModelNotFoundError, display_name
from ..safety.outputs import atomic_write
from ..safety.reading import NotARegularFileError, require_regular_file
from .architecture import CONFIG_FILE, WEIGHTS_FILE, ArchitectureConfig
from .catalog import PUBLISHED_MODELS, PublishedModel

PROVENANCE_FILE = "cliplit_source.json"
DOWNLOADS_DIRNAME = "downloads"
HEADER_LENGTH_BYTES = 8
MAX_HEADER_BYTES = 100 << 20
METADATA_KEY = "__metadata__"
NETWORK_PARTS = ("stem", "encoder_blocks", "pyramid_pooling", "expand", "middle_blocks", "reduce", "decoder_blocks",
                 "illumination_head")  # the top-level modules of `CLIPLITNetwork`, each holding tensors
HASH_CHUNK_BYTES = 1 << 20


def sha256_of(path: str | os.PathLike) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(require_regular_file(path), "rb") as handle:
        for chunk in iter(lambda: handle.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_safetensors_header(path: Path) -> dict:
    """The tensor entries of a safetensors file's header, checked to describe exactly the bytes that follow."""
    require_regular_file(path, "weights file")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(HEADER_LENGTH_BYTES)
        if len(prefix) < HEADER_LENGTH_BYTES:
            raise CheckpointError(f"{display_name(path)}: truncated (no safetensors header)")
        length = struct.unpack("<Q", prefix)[0]
        if length > min(MAX_HEADER_BYTES, size - HEADER_LENGTH_BYTES):
            raise CheckpointError(f"{display_name(path)}: truncated or not a safetensors file (header of {length} bytes)")
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise CheckpointError(f"{display_name(path)}: not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{display_name(path)}: not a safetensors file")
    tensors = {name: entry for name, entry in header.items() if name != METADATA_KEY}
    try:
        end = max((int(entry["data_offsets"][1]) for entry in tensors.values()), default=0)
    except (TypeError, KeyError, IndexError, ValueError):
        raise CheckpointError(f"{display_name(path)}: not a safetensors file (bad tensor entries)") from None
    if HEADER_LENGTH_BYTES + length + end != size:
        raise CheckpointError(f"{display_name(path)}: truncated or padded: its header describes "
                              f"{HEADER_LENGTH_BYTES + length + end} bytes, the file holds {size}")
    return tensors


def verify_folder(folder: Path, model: PublishedModel | None = None) -> None:
    """Raise `CheckpointError` (one line naming the file) unless `folder` verifies (see the module docstring)."""
    try:
        require_regular_file(folder / CONFIG_FILE, "config file")
    except NotARegularFileError as error:
        raise CheckpointError(str(error)) from None
    ArchitectureConfig.from_folder(folder)  # model_type and values checked
    weights = folder / WEIGHTS_FILE
    try:
        tensors = read_safetensors_header(weights)
    except NotARegularFileError as error:
        raise CheckpointError(str(error)) from None
    parts = {name.split(".", 1)[0] for name in tensors}
    if parts != set(NETWORK_PARTS):
        raise CheckpointError(f"{display_name(weights)}: not the weights of a CLIP-LIT network "
                              f"(tensors of {', '.join(sorted(parts)) or 'nothing'})")
    provenance_file = folder / PROVENANCE_FILE
    if model is None or not os.path.lexists(provenance_file):
        return
    try:
        provenance = json.loads(require_regular_file(provenance_file).read_text())
        source, weights_sha256 = provenance["source_sha256"], provenance["weights_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        raise CheckpointError(f"{display_name(provenance_file)}: unreadable record of the folder's source") from None
    if source != model.sha256:
        raise CheckpointError(f"{display_name(folder)}: converted from another checkpoint than {model.name}'s")
    if sha256_of(weights) != weights_sha256:
        raise CheckpointError(f"{display_name(weights)}: not the file converted from {model.name}'s checkpoint (changed since)")


def cache_problem(folder: Path, model: PublishedModel) -> str | None:
    """None when the cached `folder` of `model` verifies; else why not (one line). A missing folder: "not cached"."""
    if not os.path.lexists(folder):
        return "not cached"
    try:
        verify_folder(folder, model)
    except CheckpointError as error:
        return str(error)
    return None


def install_converted(checkpoint: Path, folder: Path, model: PublishedModel) -> Path:
    """Convert `checkpoint` (sha256 already checked) into `folder` atomically, with its provenance record."""
    from .conversion import convert_checkpoint

    with atomic_write(folder, readable=True) as staging:
        convert_checkpoint(checkpoint, staging, overwrite=True)
        record = {"name": model.name, "source": model.url, "source_sha256": model.sha256,
                  "weights_sha256": sha256_of(staging / WEIGHTS_FILE)}
        (staging / PROVENANCE_FILE).write_text(json.dumps(record, indent=1) + "\n")
        if os.path.lexists(folder):  # a damaged folder (or one of an older version): replaced whole
            shutil.rmtree(folder) if folder.is_dir() and not folder.is_symlink() else folder.unlink()
    return folder


def keep_download(source: Path, destination: Path) -> None:
    """Copy a checked checkpoint into the cache's downloads, atomically and readable under the umask."""
    if destination.exists() and os.path.samefile(source, destination):
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(destination, readable=True) as partial:
        shutil.copyfile(source, partial)


def add_published_model(name: str, checkpoint: str | os.PathLike, cache: Path) -> Path:
    """
    `cliplit models add NAME FILE`: check FILE against NAME's published sha256, keep it in the cache's
    downloads and convert it into the cache (replacing a damaged folder). Returns the cached folder.
    """
    if name not in PUBLISHED_MODELS:
        raise ModelNotFoundError(f"{display_name(name)}: not a published model name ({', '.join(PUBLISHED_MODELS)})")
    model = PUBLISHED_MODELS[name]
    path = Path(checkpoint).expanduser()
    try:
        require_regular_file(path, "checkpoint file")
    except NotARegularFileError as error:
        raise CheckpointError(str(error)) from None
    digest = sha256_of(path)
    if digest != model.sha256:
        raise CheckpointError(f"{display_name(path)}: sha256 {digest[:12]}... is not {name}'s published checkpoint "
                              f"({model.sha256[:12]}..., {model.url}); nothing was changed")
    keep_download(path, cache / DOWNLOADS_DIRNAME / model.filename)
    return install_converted(cache / DOWNLOADS_DIRNAME / model.filename, cache / model.name, model)


__all__ = ["DOWNLOADS_DIRNAME", "PROVENANCE_FILE", "add_published_model", "cache_problem", "install_converted",
           "read_safetensors_header", "sha256_of", "verify_folder"]
