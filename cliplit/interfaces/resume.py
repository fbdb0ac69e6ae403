"""Resuming a batch safely: an existing output is skipped only when it was made with the same model and
settings as the run that finds it.

Each output `cliplit enhance` writes gets a record of what it was made with, a small JSON file beside it
in a hidden folder, `<output folder>/.cliplit/<output name>.json`: the model (`network_fingerprint`: its
configuration and weights, so a published name and the `.pth` file it was converted from are the same
model) and the options that change the result (`cliplit.interfaces.cli.result_settings`). A record per
output, rather than the settings in the output's own metadata or one manifest file for the folder,
because:

- it holds for every output: formats or containers without a place for text, and `--strip-metadata`,
  which must write no metadata at all;
- processes that share an output folder (`accelerate launch`) each write the records of their own
  outputs: no lock, no lost update (a shared manifest would need both);
- an interrupted run leaves no record that lies: the record of an output about to be (re)made is
  removed before the work starts, and the new one is written (atomically) only once the output is in
  place. An output without a record is never taken as made with the current settings.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ..engine.settings import DEFAULT_MODE
from ..safety.outputs import write_text_atomically

RECORD_FOLDER = ".cliplit"
RECORD_SUFFIX = ".json"
RECORD_VERSION = 1
NO_RECORD = "no record"
OTHER_INPUT = "input"  # a difference: the output was made from another input file (names shift when inputs are added)


@dataclass(frozen=True)
class Provenance:
    """How an existing output compares with the settings of the run that finds it: `same` (skip it),
    or the names of the settings that differ (`NO_RECORD` when nothing says how it was made)."""

    same: bool
    differences: tuple[str, ...] = ()


def network_fingerprint(network) -> str:
    """sha256 of a network's configuration and weights (names, dtypes, shapes, values): what "the same model" means."""
    import torch

    digest = hashlib.sha256(json.dumps(asdict(network.config), sort_keys=True).encode())
    for name, tensor in sorted(network.state_dict().items()):
        digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def engine_result_settings(network, settings) -> dict:
    """What an output depends on through the engine (`settings`: an `EngineSettings`): the model
    (`network_fingerprint`), the strength as resolved, the mode (and fast mode's downscale), the precision and
    the denoising. The device, the tile size, compiling and the workspace change how the network runs, not the
    result (tiles are exact), and are left out."""
    result = {"model": network_fingerprint(network), "strength": network.resolve_strength(settings.strength),
              "mode": settings.mode, "precision": settings.precision, "denoise": settings.denoise}
    if settings.mode != DEFAULT_MODE:  # fast mode: the downscale changes the result
        result["fast_downscale"] = settings.fast_downscale
    return result


def record_name(output_name: str) -> str:
    """The record of the output `output_name`, relative to the output folder (for any file system)."""
    return f"{RECORD_FOLDER}/{output_name}{RECORD_SUFFIX}"


def source_identity(source: str | os.PathLike) -> str:
    """The local input an output is made from, as its record names it: its absolute path, links resolved (the
    same file by any spelling). (Ray's datasink names a row's input by its path as Ray gives it.)"""
    return os.path.realpath(os.fsdecode(source))


def record_text(settings: dict, source: str) -> str:
    """A record's content: that an output was made from the input `source` with `settings`."""
    return json.dumps({"version": RECORD_VERSION, "source": source, "settings": settings}, indent=1, sort_keys=True) + "\n"


def compare_record(text: str | None, settings: dict, source: str) -> Provenance:
    """Whether an output whose record holds `text` (None: no record) was made from the input `source` with
    `settings`; which settings differ (`OTHER_INPUT` when it was made from another input)."""
    try:
        record = json.loads(text) if text is not None else None
    except ValueError:
        record = None
    recorded = record.get("settings") if isinstance(record, dict) and record.get("version") == RECORD_VERSION else None
    if not isinstance(recorded, dict):
        return Provenance(False, (NO_RECORD,))
    current = json.loads(json.dumps(settings))  # as a record holds them (tuples as lists, ...)
    differences = {name for name in recorded.keys() | current.keys() if recorded.get(name) != current.get(name)}
    if record.get("source") != source:
        differences.add(OTHER_INPUT)
    return Provenance(not differences, tuple(sorted(differences)))


def record_path(output: Path) -> Path:
    """Where the record of a local `output` is kept."""
    return output.parent / record_name(output.name)


def provenance(output: Path, settings: dict, source: Path) -> Provenance:
    """Whether the existing local `output` was made from `source` with `settings` (JSON values), and if not,
    which differ."""
    try:
        text = record_path(output).read_text()
    except (OSError, ValueError):
        text = None
    return compare_record(text, settings, source_identity(source))


def forget(output: Path) -> None:
    """Remove the record of an output that is about to be (re)made. Raises `OSError` when the record's place
    holds something that is not a file (a folder): the output cannot be made with a record then."""
    record_path(output).unlink(missing_ok=True)


def remember(output: Path, settings: dict, source: Path) -> None:
    """Record, atomically, that the local `output` (now in place) was made from `source` with `settings`."""
    record = record_path(output)
    record.parent.mkdir(exist_ok=True)
    write_text_atomically(record, record_text(settings, source_identity(source)))


__all__ = ["NO_RECORD", "OTHER_INPUT", "Provenance", "RECORD_FOLDER", "compare_record", "engine_result_settings", "forget", "network_fingerprint",
           "provenance", "record_name", "record_path", "record_text", "remember", "source_identity"]
