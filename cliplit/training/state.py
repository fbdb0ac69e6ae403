"""Where a training run is and how it is saved (`cliplit.training.state`).

A checkpoint `OUTPUT/checkpoint-N` (N: the global step) holds accelerate's state (models, optimizers,
random states, scaler) and ours: `Progress` as JSON and the `Snapshots` tensors as safetensors.
`find_checkpoint` picks the one to resume from, `prune_checkpoints` keeps `--checkpoints_total_limit`
of them. The run's arguments are recorded as typed (`save_arguments`, `training_args.json`).

Every function takes the run's `accelerate.Accelerator`; accelerate itself is not imported here.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..errors import DataError, display_name, first_line
from ..safety.outputs import write_text_atomically
from .data import STREAM_NAMES

logger = logging.getLogger(__name__)

STATE_JSON = "cliplit_training_state.json"
STATE_TENSORS = "cliplit_training_state.safetensors"
ARGUMENTS_FILE = "training_args.json"
CHECKPOINT_PREFIX = "checkpoint-"
LATEST = "latest"  # --resume_from_checkpoint's name for the checkpoint of the largest step


@dataclass
class Progress:
    """Where training is: the stage and round, the global step and the step within the phase, the items each
    batch stream has drawn, the phase's best-state bookkeeping, the stored results' count and RAVE's threshold."""

    stage: str
    round: int = 0
    global_step: int = 0
    phase_step: int = 0
    stream_items: dict = field(default_factory=lambda: {name: 0 for name in STREAM_NAMES})
    losses_since_check: list = field(default_factory=list)
    best_value: float = math.inf
    num_results: int = 0
    rave_threshold: float | None = None
    phase_extension: int = 0  # steps added to the running phase (--phase_extension_threshold)
    last_loss: float = math.inf


@dataclass
class Snapshots:
    """Best states of the current phase, the stored enhanced results and RAVE's residual (tensors, CPU).

    `best_model`: state dict of the enhancement network or None; `best_guidance`: the pair's embeddings
    or None; `results`: list (oldest first, at most two) of uint8 tensors (N_backlit, 3, S, S), S = the
    prompt resolution; `rave_residual`: (projection_dim,) or None.
    """

    best_model: dict[str, torch.Tensor] | None = None
    best_guidance: torch.Tensor | None = None
    results: list[torch.Tensor] = field(default_factory=list)
    rave_residual: torch.Tensor | None = None

    def tensors(self) -> dict[str, torch.Tensor]:
        """Everything as one flat name -> tensor dict (what `from_tensors` reads back)."""
        out = {}
        if self.best_model is not None:
            out.update({f"best_model.{k}": v.contiguous() for k, v in self.best_model.items()})
        if self.best_guidance is not None:
            out["best_guidance"] = self.best_guidance.contiguous()
        if self.rave_residual is not None:
            out["rave_residual"] = self.rave_residual.contiguous()
        for i, result in enumerate(self.results):
            out[f"results.{i}"] = result.contiguous()
        return out

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], num_results: int) -> Snapshots:
        model = {k[len("best_model."):]: v for k, v in tensors.items() if k.startswith("best_model.")}
        return cls(best_model=model or None, best_guidance=tensors.get("best_guidance"),
                   results=[tensors[f"results.{i}"] for i in range(num_results)], rave_residual=tensors.get("rave_residual"))


def checkpoint_folder(output_dir: Path, global_step: int) -> Path:
    return Path(output_dir) / f"{CHECKPOINT_PREFIX}{global_step}"


def checkpoint_step(folder: Path) -> int | None:
    """N of a `checkpoint-N` folder name, None for any other name."""
    suffix = folder.name[len(CHECKPOINT_PREFIX):]
    return int(suffix) if folder.name.startswith(CHECKPOINT_PREFIX) and suffix.isdigit() else None


def checkpoints(output_dir: Path) -> list[Path]:
    """The `checkpoint-N` folders of `output_dir`, by increasing N."""
    found = [p for p in Path(output_dir).glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir() and checkpoint_step(p) is not None]
    return sorted(found, key=checkpoint_step)


def save_training_state(accelerator, folder: Path, progress: Progress, snapshots: Snapshots) -> None:
    """accelerate's state (models, optimizers, RNG, scaler) plus our progress and tensors (every process calls it)."""
    from safetensors.torch import save_file

    accelerator.save_state(str(folder))
    if accelerator.is_main_process:
        write_text_atomically(folder / STATE_JSON, json.dumps(asdict(progress), indent=1))
        save_file(snapshots.tensors(), str(folder / STATE_TENSORS))
    accelerator.wait_for_everyone()


def load_training_state(accelerator, folder: Path) -> tuple[Progress, Snapshots]:
    """Restore accelerate's state from `folder` and return our progress and snapshots; a folder that is not a
    checkpoint, or a damaged one, is a one-line `DataError`."""
    from safetensors.torch import load_file

    for name in (STATE_JSON, STATE_TENSORS):
        if not (folder / name).is_file():
            raise DataError(f"{display_name(folder)}: not a CLIP-LIT training checkpoint (no {name})")
    try:
        accelerator.load_state(str(folder))
        progress = Progress(**json.loads((folder / STATE_JSON).read_text()))
        snapshots = Snapshots.from_tensors(load_file(str(folder / STATE_TENSORS)), progress.num_results)
    except Exception as error:  # noqa: BLE001 - accelerate, torch and safetensors fail in many ways on damaged files
        raise DataError(f"{display_name(folder)}: damaged training checkpoint, cannot resume from it "
                        f"({first_line(error)}); pass another --resume_from_checkpoint, or none") from None
    return progress, snapshots


def find_checkpoint(output_dir: Path, spec: str) -> Path | None:
    """'latest' -> the checkpoint-N folder with the largest N (None if none); otherwise the given folder,
    as a path or a name inside `output_dir`."""
    if spec != LATEST:
        path = Path(spec)
        if not path.is_dir():
            path = Path(output_dir) / spec
        if not path.is_dir():
            raise DataError(f"{display_name(spec)}: checkpoint folder not found")
        return path
    found = checkpoints(output_dir)
    return found[-1] if found else None


def prune_checkpoints(output_dir: Path, limit: int | None) -> None:
    """Keep at most `limit - 1` checkpoints (the oldest go), to make room for a new one; None keeps all."""
    if limit is None:
        return
    found = checkpoints(output_dir)
    for old in found[: max(0, len(found) - limit + 1)]:
        logger.info("removing old checkpoint %s", old)
        shutil.rmtree(old)


def save_checkpoint(accelerator, output_dir: Path, limit: int | None, progress: Progress, snapshots: Snapshots) -> Path:
    """The checkpoint of the current step (every process calls it), after pruning the old ones to `limit`."""
    if accelerator.is_main_process:
        prune_checkpoints(output_dir, limit)
    accelerator.wait_for_everyone()
    folder = checkpoint_folder(output_dir, progress.global_step)
    save_training_state(accelerator, folder, progress, snapshots)
    return folder


def save_arguments(folder: Path, arguments: dict) -> Path:
    """The run's arguments as typed (argparse's namespace as a dict, defaults included) in `training_args.json`."""
    path = Path(folder) / ARGUMENTS_FILE
    write_text_atomically(path, json.dumps(arguments, indent=1, default=str) + "\n")
    return path
