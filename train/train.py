#!/usr/bin/env python
"""Train CLIP-LIT (Liang et al., ICCV 2023) from unpaired backlit and well-lit images.

    accelerate launch train/train.py --backlit_dir B --welllit_dir W --output_dir OUT

Stages (one global step counter, `--max_train_steps` in all):
  1. prompt initialization: cross-entropy of the learnable prompt pair (backlit -> negative prompt,
     well-lit -> positive prompt), `--prompt_init_steps`; skipped with `--init_prompts`.
  2. reconstruction: the enhancement network learns the identity with the identity loss alone,
     `--reconstruction_steps`; skipped with `--init_model`.
  3. rounds, until `--max_train_steps`: enhancement training (w_clip L_clip + w_id L_identity,
     `--enhance_steps_per_round`), then prompt refinement with margin ranking losses
     (`--prompt_steps_per_round`) on backlit images, the results of the best enhancement model of
     the previous round(s), and well-lit images. The best model / prompt pair of each phase (lowest
     mean loss over `--best_check_steps` steps) carries into the next phase.

Everything runs batched on the accelerator's device; data workers only decode and resize images.
Batches are drawn from deterministic per-stream permutations and augmented with per-step seeded
generators, so `--resume_from_checkpoint latest` ends exactly where an uninterrupted run would.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from cliplit.errors import CLIPLITError, DataError
from cliplit.imaging.codec import EIGHT_BIT_MAX, quantize
from cliplit.model.architecture import AUTHOR_CHECKPOINT_SUFFIXES
from cliplit.training.data import (
    ENHANCE_ZOOM_RANGE,
    PROMPT_ZOOM_RANGE,
    ResizedImages,
    dataset_sources,
    folder_source,
    random_augment,
    stream_indices,
)
from cliplit.training.prompts import PROMPT_FILE, PromptPair

logger = logging.getLogger("cliplit.train")

DEFAULT_CLIP = "openai/clip-vit-base-patch32"
DEFAULT_ROUNDS = 3  # rounds run when --max_train_steps is not given
RECONSTRUCTION_LOSS_SCALE = 25.0  # the authors' scale of the identity loss while learning the identity
MAX_RESULTS = 2  # the prompt refinement uses the results of the last two rounds
STREAM_SEED_STRIDE = 1_000_003
STEP_SEED_STRIDE = 7919
RANK_SEED_STRIDE = 104_729
STATE_JSON = "cliplit_training_state.json"
STATE_TENSORS = "cliplit_training_state.safetensors"
ARGS_FILE = "training_args.json"
STREAMS = ("backlit_prompt", "welllit_prompt", "backlit_enhance")

STAGE_PROMPT_INIT = "prompt_init"
STAGE_RECONSTRUCTION = "reconstruction"
STAGE_ENHANCE = "enhance"
STAGE_PROMPT_REFINE = "prompt_refine"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train a CLIP-LIT enhancement model.")
    data = parser.add_argument_group("data")
    data.add_argument("--backlit_dir", type=str, default=None, help="Folder of backlit images (any Pillow format, recursive).")
    data.add_argument("--welllit_dir", type=str, default=None, help="Folder of well-lit images (any Pillow format, recursive).")
    data.add_argument("--dataset_name", type=str, default=None,
                      help="Instead of the folders: 'imagefolder' (with --train_data_dir) or a Hub dataset id; needs `datasets`.")
    data.add_argument("--train_data_dir", type=str, default=None, help="data_dir for --dataset_name (imagefolder: one sub-folder per class).")
    data.add_argument("--image_column", type=str, default="image")
    data.add_argument("--label_column", type=str, default="label")
    data.add_argument("--backlit_label", type=str, default="backlit")
    data.add_argument("--welllit_label", type=str, default="welllit")
    data.add_argument("--cache_dir", type=str, default=None)
    data.add_argument("--dataloader_num_workers", type=int, default=4)

    models = parser.add_argument_group("models")
    models.add_argument("--clip_model", type=str, default=DEFAULT_CLIP, help="CLIP checkpoint (Hub id or folder with model + tokenizer).")
    models.add_argument("--init_model", type=str, default=None,
                        help="Start from this enhancement model (a published model's name such as clip-lit, a Hub id, "
                             "a from_pretrained folder, or an authors' .pth) and skip reconstruction.")
    models.add_argument("--init_prompts", type=str, default=None,
                        help="Start from this prompt pair (our .safetensors / folder, or the authors' .pth) and skip prompt initialization.")
    models.add_argument("--prompt_length", type=int, default=16)

    sched = parser.add_argument_group("schedule")
    sched.add_argument("--prompt_init_steps", type=int, default=8000)
    sched.add_argument("--reconstruction_steps", type=int, default=1000)
    sched.add_argument("--enhance_steps_per_round", type=int, default=2100)
    sched.add_argument("--prompt_steps_per_round", type=int, default=1000)
    sched.add_argument("--max_train_steps", type=int, default=None,
                       help=f"Total optimizer steps over all stages (default: stages 1-2 plus {DEFAULT_ROUNDS} rounds).")
    sched.add_argument("--best_check_steps", type=int, default=20,
                       help="Every this many steps, the mean loss since the last check picks the best model / prompt of the phase.")

    optim = parser.add_argument_group("optimization")
    optim.add_argument("--resolution", type=int, default=512, help="Enhancement training size (images resized, no crop).")
    optim.add_argument("--prompt_resolution", type=int, default=256, help="Prompt training size.")
    optim.add_argument("--train_batch_size", type=int, default=8, help="Enhancement batch per device.")
    optim.add_argument("--prompt_batch_size", type=int, default=16, help="Prompt batch per device.")
    optim.add_argument("--learning_rate", type=float, default=2e-5, help="Adam lr of the enhancement network.")
    optim.add_argument("--prompt_learning_rate", type=float, default=5e-6, help="Adam lr of the prompt pair.")
    optim.add_argument("--weight_decay", type=float, default=1e-3)
    optim.add_argument("--adam_beta1", type=float, default=0.9)
    optim.add_argument("--adam_beta2", type=float, default=0.999)
    optim.add_argument("--adam_epsilon", type=float, default=1e-8)
    optim.add_argument("--clip_loss_weight", type=float, default=320.0, help="w_clip (the authors' 16 x 20).")
    optim.add_argument("--identity_loss_weight", type=float, default=0.9 * 25.0, help="w_id (the authors' 0.9 x 25).")
    optim.add_argument("--prompt_refine_loss_weight", type=float, default=200.0, help="Scale of the margin losses (the authors' 200).")
    optim.add_argument("--gradient_accumulation_steps", type=int, default=1)
    optim.add_argument("--mixed_precision", type=str, default=None, choices=["no", "fp16", "bf16"])
    optim.add_argument("--seed", type=int, default=0)

    run = parser.add_argument_group("run")
    run.add_argument("--output_dir", type=str, required=True)
    run.add_argument("--logging_dir", type=str, default="logs", help="TensorBoard folder, relative to --output_dir.")
    run.add_argument("--report_to", type=str, default="tensorboard", help="'tensorboard', 'wandb', 'all' or 'none'.")
    run.add_argument("--checkpointing_steps", type=int, default=500)
    run.add_argument("--checkpoints_total_limit", type=int, default=None)
    run.add_argument("--resume_from_checkpoint", type=str, default=None, help="A checkpoint folder, or 'latest'.")
    run.add_argument("--validation_steps", type=int, default=500, help="Log before/after sample grids this often.")
    run.add_argument("--num_validation_images", type=int, default=4)
    run.add_argument("--push_to_hub", action="store_true")
    run.add_argument("--hub_model_id", type=str, default=None)
    run.add_argument("--hub_token", type=str, default=None)
    args = parser.parse_args(argv)

    if args.dataset_name is None and (args.backlit_dir is None or args.welllit_dir is None):
        parser.error("give --backlit_dir and --welllit_dir, or --dataset_name")
    for name in ("prompt_init_steps", "reconstruction_steps", "enhance_steps_per_round", "prompt_steps_per_round"):
        if getattr(args, name) < 0:
            parser.error(f"--{name} must be >= 0")
    for name in ("train_batch_size", "prompt_batch_size", "gradient_accumulation_steps", "best_check_steps",
                 "checkpointing_steps", "validation_steps", "prompt_length", "resolution", "prompt_resolution"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if args.prompt_batch_size < 2:
        parser.error("--prompt_batch_size must be >= 2 (half backlit, half well-lit during prompt initialization)")
    if args.push_to_hub and not args.hub_model_id:
        parser.error("--push_to_hub needs --hub_model_id")
    return args


# ------------------------------------------------------------------------------------------ state
@dataclass
class Progress:
    """Where training is: saved with each checkpoint (scalars as JSON, tensors as safetensors)."""

    stage: str = STAGE_PROMPT_INIT
    round: int = 0
    global_step: int = 0
    phase_step: int = 0
    stream_items: dict = field(default_factory=lambda: {name: 0 for name in STREAMS})
    losses_since_check: list = field(default_factory=list)
    best_value: float = math.inf
    num_results: int = 0


class Snapshots:
    """Best states of the current phase and the stored enhanced results (tensors, on the CPU).

    `best_model`: state dict of the enhancement network or None; `best_prompts`: (2, L, width) or None;
    `results`: list (oldest first, at most two) of uint8 tensors (N_backlit, 3, S, S), S = prompt resolution.
    """

    def __init__(self):
        self.best_model: dict[str, torch.Tensor] | None = None
        self.best_prompts: torch.Tensor | None = None
        self.results: list[torch.Tensor] = []

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        if self.best_model is not None:
            out.update({f"best_model.{k}": v.contiguous() for k, v in self.best_model.items()})
        if self.best_prompts is not None:
            out["best_prompts"] = self.best_prompts.contiguous()
        for i, result in enumerate(self.results):
            out[f"results.{i}"] = result.contiguous()
        return out

    def load_tensors(self, tensors: dict[str, torch.Tensor], num_results: int) -> None:
        model = {k[len("best_model."):]: v for k, v in tensors.items() if k.startswith("best_model.")}
        self.best_model = model or None
        self.best_prompts = tensors.get("best_prompts")
        self.results = [tensors[f"results.{i}"] for i in range(num_results)]


def save_training_state(accelerator, folder: Path, progress: Progress, snapshots: Snapshots) -> None:
    """accelerate's state (models, optimizers, RNG, scaler) plus our progress and tensors."""
    from safetensors.torch import save_file

    accelerator.save_state(str(folder))
    if accelerator.is_main_process:
        (folder / STATE_JSON).write_text(json.dumps(asdict(progress), indent=1))
        save_file(snapshots.tensors(), str(folder / STATE_TENSORS))
    accelerator.wait_for_everyone()


def load_training_state(accelerator, folder: Path, snapshots: Snapshots) -> Progress:
    from safetensors.torch import load_file

    for name in (STATE_JSON, STATE_TENSORS):
        if not (folder / name).is_file():
            raise DataError(f"{folder}: not a CLIP-LIT training checkpoint (no {name})")
    accelerator.load_state(str(folder))
    progress = Progress(**json.loads((folder / STATE_JSON).read_text()))
    snapshots.load_tensors(load_file(str(folder / STATE_TENSORS)), progress.num_results)
    return progress


def find_checkpoint(output_dir: Path, spec: str) -> Path | None:
    """'latest' -> the checkpoint-N folder with the largest N (None if none); otherwise the given path."""
    if spec != "latest":
        path = Path(spec)
        if not path.is_dir():
            path = output_dir / spec
        if not path.is_dir():
            raise DataError(f"{spec}: checkpoint folder not found")
        return path
    candidates = [p for p in output_dir.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return max(candidates, key=lambda p: int(p.name.split("-")[-1])) if candidates else None


def prune_checkpoints(output_dir: Path, limit: int | None) -> None:
    """Keep at most `limit - 1` checkpoints before a new one is written."""
    if limit is None:
        return
    checkpoints = sorted(
        (p for p in output_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    for old in checkpoints[: max(0, len(checkpoints) - limit + 1)]:
        logger.info("removing old checkpoint %s", old)
        shutil.rmtree(old)


# ------------------------------------------------------------------------------------------ helpers
def phase_length(args, stage: str) -> int:
    return {
        STAGE_PROMPT_INIT: args.prompt_init_steps,
        STAGE_RECONSTRUCTION: args.reconstruction_steps,
        STAGE_ENHANCE: args.enhance_steps_per_round,
        STAGE_PROMPT_REFINE: args.prompt_steps_per_round,
    }[stage]


def step_generator(args, global_step: int, micro: int, rank: int) -> torch.Generator:
    """CPU generator for one micro-batch's augmentation: a pure function of (seed, step, micro-batch, rank)."""
    seed = args.seed + STEP_SEED_STRIDE * (global_step * args.gradient_accumulation_steps + micro) + RANK_SEED_STRIDE * rank
    return torch.Generator().manual_seed(seed)


class Streams:
    """Infinite, resumable batch streams (one per data use), loaded by DataLoader workers."""

    def __init__(self, args, accelerator, datasets: dict[str, ResizedImages], per_process: dict[str, int], progress: Progress):
        self.args, self.accelerator, self.datasets, self.per_process, self.progress = args, accelerator, datasets, per_process, progress
        self.iterators: dict = {}

    def next(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Next batch of stream `name`: (float (B, 3, S, S) in [0, 1] on the device, long indices (B,))."""
        per_process = self.per_process[name]
        if name not in self.iterators or self.iterators[name][0] != per_process:
            dataset = self.datasets[name]
            sampler = stream_indices(
                len(dataset),
                seed=self.args.seed + STREAM_SEED_STRIDE * (STREAMS.index(name) + 1),
                start_item=self.progress.stream_items[name],
                global_batch=per_process * self.accelerator.num_processes,
                rank=self.accelerator.process_index,
                per_process=per_process,
            )
            loader = DataLoader(dataset, batch_sampler=sampler, num_workers=self.args.dataloader_num_workers,
                                pin_memory=self.accelerator.device.type == "cuda")
            self.iterators[name] = (per_process, iter(loader))
        pixels, indices = next(self.iterators[name][1])
        self.progress.stream_items[name] += per_process * self.accelerator.num_processes
        return pixels.to(self.accelerator.device, non_blocking=True).float() / EIGHT_BIT_MAX, indices


def load_sources(args):
    if args.dataset_name is not None:
        return dataset_sources(args.dataset_name, args.train_data_dir, args.image_column, args.label_column,
                               args.backlit_label, args.welllit_label, args.cache_dir)
    return folder_source(args.backlit_dir, "backlit"), folder_source(args.welllit_dir, "well-lit")


def load_initial_prompts(args, guidance, tokenizer):
    fresh = PromptPair.from_clip(guidance, tokenizer, args.prompt_length)
    if args.init_prompts is None:
        return fresh
    path = Path(args.init_prompts)
    if path.suffix.lower() in AUTHOR_CHECKPOINT_SUFFIXES:
        pair = PromptPair.load_authors_pth(path, args.prompt_length, fresh.sot_token_id, fresh.eot_token_id)
    else:
        pair = PromptPair.load(path)
    if pair.embeddings.shape[1:] != fresh.embeddings.shape[1:]:
        raise DataError(f"{path}: prompt pair of shape {tuple(pair.embeddings.shape)} does not fit this CLIP "
                        f"and --prompt_length (expected (2, {args.prompt_length}, {guidance.text_width}))")
    return pair


def image_grid(rows: list[torch.Tensor]) -> torch.Tensor:
    """rows: tensors (N, 3, H, W) in [0, 1] -> one (3, rows*H, N*W) image."""
    return torch.cat([torch.cat(list(row), dim=-1) for row in rows], dim=-2)


# ------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from accelerate import Accelerator
    from accelerate.logging import get_logger
    from accelerate.utils import GradientAccumulationPlugin, ProjectConfiguration, set_seed
    from tqdm.auto import tqdm
    from transformers import AutoTokenizer

    from cliplit.model.configuration_cliplit import CLIPLITConfig
    from cliplit.model.loading import load_model
    from cliplit.model.modeling_cliplit import CLIPLITModel
    from cliplit.training.clip_guidance import CLIPGuidance, cosine_logits
    from cliplit.training.losses import (
        IDENTITY_WEIGHTS,
        RECONSTRUCTION_WEIGHTS,
        clip_enhancement_loss,
        identity_loss,
        positive_scores,
        prompt_initialization_loss,
        prompt_refinement_loss,
    )

    output_dir = Path(args.output_dir)
    report_to = None if args.report_to == "none" else args.report_to
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,
        gradient_accumulation_plugin=GradientAccumulationPlugin(
            num_steps=args.gradient_accumulation_steps, sync_with_dataloader=False
        ),
        log_with=report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / args.logging_dir)),
    )
    log = get_logger("cliplit.train")
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
    set_seed(args.seed)

    # ---- data (workers decode and resize only)
    backlit_source, welllit_source = load_sources(args)
    log.info(f"{len(backlit_source)} backlit and {len(welllit_source)} well-lit training images", main_process_only=True)
    half = args.prompt_batch_size // 2
    datasets = {
        "backlit_prompt": ResizedImages(backlit_source, args.prompt_resolution),
        "welllit_prompt": ResizedImages(welllit_source, args.prompt_resolution),
        "backlit_enhance": ResizedImages(backlit_source, args.resolution),
    }

    # ---- models
    guidance = CLIPGuidance.from_pretrained(args.clip_model).to(accelerator.device)
    tokenizer = AutoTokenizer.from_pretrained(args.clip_model)
    prompts = load_initial_prompts(args, guidance.to("cpu"), tokenizer)
    guidance.to(accelerator.device)
    if args.init_model is not None:
        model = load_model(args.init_model)
        args.reconstruction_steps = 0
    else:
        model = CLIPLITModel(CLIPLITConfig())
        model.start_from_identity()
    if args.init_prompts is not None:
        args.prompt_init_steps = 0
    model.train()
    if args.max_train_steps is None:
        args.max_train_steps = args.prompt_init_steps + args.reconstruction_steps + DEFAULT_ROUNDS * (
            args.enhance_steps_per_round + args.prompt_steps_per_round)

    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                 eps=args.adam_epsilon, weight_decay=args.weight_decay)
    prompt_optimizer = torch.optim.Adam(prompts.parameters(), lr=args.prompt_learning_rate,
                                        betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon,
                                        weight_decay=args.weight_decay)
    model, prompts, optimizer, prompt_optimizer = accelerator.prepare(model, prompts, optimizer, prompt_optimizer)
    raw_model = accelerator.unwrap_model(model)
    raw_prompts = accelerator.unwrap_model(prompts)

    # ---- resume
    progress, snapshots = Progress(), Snapshots()
    if args.resume_from_checkpoint:
        folder = find_checkpoint(output_dir, args.resume_from_checkpoint)
        if folder is None:
            log.info("no checkpoint to resume from: starting a new run", main_process_only=True)
        else:
            log.info(f"resuming from {folder}", main_process_only=True)
            progress = load_training_state(accelerator, folder, snapshots)
    if progress.global_step == 0 and progress.stage == STAGE_PROMPT_INIT and args.prompt_init_steps == 0:
        progress.stage = STAGE_RECONSTRUCTION

    streams = Streams(args, accelerator, datasets,
                      {"backlit_prompt": half, "welllit_prompt": half, "backlit_enhance": args.train_batch_size}, progress)
    if report_to is not None:
        config = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in vars(args).items()}
        accelerator.init_trackers("cliplit", config=config)

    def refine_batch_sizes() -> None:
        streams.per_process["backlit_prompt"] = half if progress.stage == STAGE_PROMPT_INIT else args.prompt_batch_size
        streams.per_process["welllit_prompt"] = streams.per_process["backlit_prompt"]

    # ---- phase bodies: each returns the loss of one micro-batch (scalar) and logs
    def prompt_init_micro(generator):
        backlit, _ = streams.next("backlit_prompt")
        welllit, _ = streams.next("welllit_prompt")
        images = random_augment([torch.cat([backlit, welllit])], PROMPT_ZOOM_RANGE, generator)[0]
        labels = torch.cat([torch.zeros(len(backlit)), torch.ones(len(welllit))]).long().to(images.device)
        with torch.no_grad(), accelerator.autocast():
            embeds, _ = guidance.image_features(images)
        with accelerator.autocast():
            logits = prompts(embeds.float(), guidance)
        return prompt_initialization_loss(logits, labels), {}

    def prompt_refine_micro(generator):
        backlit, indices = streams.next("backlit_prompt")
        welllit, _ = streams.next("welllit_prompt")
        results = [r[indices].to(backlit.device).float() / EIGHT_BIT_MAX for r in snapshots.results]
        augmented = random_augment([backlit, *results], PROMPT_ZOOM_RANGE, generator)
        welllit = random_augment([welllit], PROMPT_ZOOM_RANGE, generator)[0]
        groups = [*augmented, welllit]
        with torch.no_grad(), accelerator.autocast():
            embeds, _ = guidance.image_features(torch.cat(groups))
        with accelerator.autocast():
            logits = prompts(embeds.float(), guidance)
        scores = positive_scores(logits).split([len(g) for g in groups])
        loss = args.prompt_refine_loss_weight * prompt_refinement_loss(scores[0], scores[-1], scores[1:-1])
        return loss, {}

    def enhance_micro(generator, text_embeds, reconstruction: bool):
        backlit, _ = streams.next("backlit_enhance")
        backlit = random_augment([backlit], ENHANCE_ZOOM_RANGE, generator)[0]
        with accelerator.autocast():
            enhanced = model(backlit).reconstruction
            out_embeds, out_hidden = guidance.image_features(enhanced, with_hidden_states=True)
            with torch.no_grad():
                _, in_hidden = guidance.image_features(backlit, with_hidden_states=True)
        if reconstruction:
            loss = RECONSTRUCTION_LOSS_SCALE * identity_loss(out_hidden, in_hidden, RECONSTRUCTION_WEIGHTS)
            return loss, {}
        l_clip = clip_enhancement_loss(cosine_logits(out_embeds.float(), text_embeds))
        l_id = identity_loss(out_hidden, in_hidden, IDENTITY_WEIGHTS)
        loss = args.clip_loss_weight * l_clip + args.identity_loss_weight * l_id
        return loss, {"loss_clip": l_clip.detach(), "loss_identity": l_id.detach()}

    # ---- phase ends
    @torch.no_grad()
    def compute_results() -> torch.Tensor:
        """Outputs of the (best) model on all training backlit images, at the prompt resolution, uint8 on the CPU."""
        raw_model.eval()
        count = len(datasets["backlit_enhance"])
        mine = list(range(accelerator.process_index, count, accelerator.num_processes))
        per_process = math.ceil(count / accelerator.num_processes)
        mine += [mine[-1] if mine else 0] * (per_process - len(mine))
        loader = DataLoader(Subset(datasets["backlit_enhance"], mine), batch_size=args.train_batch_size,
                            num_workers=args.dataloader_num_workers)
        outputs, positions = [], []
        for pixels, idx in loader:
            pixels = pixels.to(accelerator.device).float() / EIGHT_BIT_MAX
            with accelerator.autocast():
                enhanced = raw_model(pixels).reconstruction.float()
            enhanced = F.interpolate(enhanced, size=(args.prompt_resolution,) * 2, mode="bilinear",
                                     align_corners=False, antialias=True)
            outputs.append(quantize(enhanced, 8))
            positions.append(idx.to(accelerator.device))
        raw_model.train()
        gathered = accelerator.gather(torch.cat(outputs)).cpu()
        gathered_idx = accelerator.gather(torch.cat(positions)).cpu()
        results = torch.zeros((count, 3, args.prompt_resolution, args.prompt_resolution), dtype=torch.uint8)
        results[gathered_idx] = gathered
        return results

    def apply_best() -> None:
        """Load the phase's best snapshot (if any) into the live model / prompt pair."""
        if progress.stage in (STAGE_ENHANCE,) and snapshots.best_model is not None:
            raw_model.load_state_dict(snapshots.best_model)
        if progress.stage in (STAGE_PROMPT_INIT, STAGE_PROMPT_REFINE) and snapshots.best_prompts is not None:
            with torch.no_grad():
                raw_prompts.embeddings.copy_(snapshots.best_prompts)

    def end_phase() -> None:
        apply_best()
        if progress.stage == STAGE_PROMPT_INIT:
            progress.stage = STAGE_RECONSTRUCTION
        elif progress.stage == STAGE_RECONSTRUCTION:
            progress.stage = STAGE_ENHANCE
        elif progress.stage == STAGE_ENHANCE:
            snapshots.results = (snapshots.results + [compute_results()])[-MAX_RESULTS:]
            progress.num_results = len(snapshots.results)
            progress.stage = STAGE_PROMPT_REFINE
        else:
            progress.stage = STAGE_ENHANCE
            progress.round += 1
        progress.phase_step = 0
        progress.losses_since_check = []
        progress.best_value = math.inf
        snapshots.best_model, snapshots.best_prompts = None, None
        log.info(f"step {progress.global_step}: stage {progress.stage}, round {progress.round}", main_process_only=True)

    def track_best(loss_value: float) -> None:
        """Every --best_check_steps steps keep the phase's state with the lowest mean loss."""
        progress.losses_since_check.append(loss_value)
        if progress.phase_step % args.best_check_steps != 0 or progress.stage == STAGE_RECONSTRUCTION:
            return
        mean = sum(progress.losses_since_check) / len(progress.losses_since_check)
        progress.losses_since_check = []
        if mean < progress.best_value:
            progress.best_value = mean
            if progress.stage == STAGE_ENHANCE:
                snapshots.best_model = {k: v.detach().cpu().clone() for k, v in raw_model.state_dict().items()}
            else:
                snapshots.best_prompts = raw_prompts.embeddings.detach().cpu().clone()

    validation_indices = list(range(min(args.num_validation_images, len(datasets["backlit_enhance"]))))

    @torch.no_grad()
    def log_validation() -> None:
        if not accelerator.is_main_process or not validation_indices:
            return
        from PIL import Image

        raw_model.eval()
        inputs = torch.stack([datasets["backlit_enhance"][i][0] for i in validation_indices]).to(accelerator.device)
        inputs = inputs.float() / EIGHT_BIT_MAX
        outputs = raw_model(inputs).reconstruction.float().clamp(0, 1)
        raw_model.train()
        grid = image_grid([inputs, outputs]).cpu()
        samples = output_dir / "samples"
        samples.mkdir(exist_ok=True)
        array = quantize(grid.permute(1, 2, 0), 8).numpy()
        Image.fromarray(array).save(samples / f"step_{progress.global_step:07d}.png")
        for tracker in accelerator.trackers:
            if tracker.name == "tensorboard":
                tracker.writer.add_image("validation/before_after", grid, progress.global_step)

    # ---- loop
    progress_bar = tqdm(total=args.max_train_steps, initial=progress.global_step, disable=not accelerator.is_local_main_process)
    text_embeds = None
    while progress.global_step < args.max_train_steps:
        stage = progress.stage
        if progress.phase_step >= phase_length(args, stage):
            end_phase()
            text_embeds = None
            continue
        refine_batch_sizes()
        if stage in (STAGE_PROMPT_INIT, STAGE_PROMPT_REFINE):
            module, opt = prompts, prompt_optimizer
        else:
            module, opt = model, optimizer
            if text_embeds is None and stage == STAGE_ENHANCE:
                with torch.no_grad():
                    text_embeds = raw_prompts.text_embeddings(guidance).float()
        total, extras = 0.0, {}
        for micro in range(args.gradient_accumulation_steps):
            generator = step_generator(args, progress.global_step, micro, accelerator.process_index)
            with accelerator.accumulate(module):
                if stage == STAGE_PROMPT_INIT:
                    loss, extras = prompt_init_micro(generator)
                elif stage == STAGE_PROMPT_REFINE:
                    loss, extras = prompt_refine_micro(generator)
                else:
                    loss, extras = enhance_micro(generator, text_embeds, reconstruction=stage == STAGE_RECONSTRUCTION)
                accelerator.backward(loss)
                opt.step()
                opt.zero_grad(set_to_none=True)
            total = total + loss.detach()
        mean_loss = accelerator.reduce(total / args.gradient_accumulation_steps, reduction="mean").item()
        progress.global_step += 1
        progress.phase_step += 1
        track_best(mean_loss)

        progress_bar.update(1)
        progress_bar.set_postfix(stage=stage, round=progress.round, loss=f"{mean_loss:.4f}")
        scalars = {f"{stage}/loss": mean_loss, **{f"{stage}/{k}": v.item() for k, v in extras.items()}}
        accelerator.log(scalars, step=progress.global_step)

        if progress.global_step % args.checkpointing_steps == 0:
            folder = output_dir / f"checkpoint-{progress.global_step}"
            if accelerator.is_main_process:
                prune_checkpoints(output_dir, args.checkpoints_total_limit)
            accelerator.wait_for_everyone()
            save_training_state(accelerator, folder, progress, snapshots)
            log.info(f"saved state to {folder}", main_process_only=True)
        if progress.global_step % args.validation_steps == 0:
            log_validation()
    progress_bar.close()

    # ---- output: the best states of the phase that was running, then a from_pretrained folder
    apply_best()
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        raw_model.save_pretrained(output_dir)
        raw_prompts.save(output_dir / PROMPT_FILE)
        (output_dir / ARGS_FILE).write_text(json.dumps(vars(args), indent=1, default=str))
        write_model_card(output_dir, args, progress, len(backlit_source), len(welllit_source))
        log_validation()
        if args.push_to_hub:
            from huggingface_hub import create_repo, upload_folder

            repo_id = create_repo(args.hub_model_id, exist_ok=True, token=args.hub_token).repo_id
            upload_folder(repo_id=repo_id, folder_path=str(output_dir), token=args.hub_token,
                          commit_message="CLIP-LIT training", ignore_patterns=["checkpoint-*", "checkpoint-*/**", "logs/**"])
    accelerator.end_training()


def write_model_card(output_dir: Path, args, progress: Progress, num_backlit: int, num_welllit: int) -> None:
    """A README.md model card describing the run."""
    card = f"""---
library_name: transformers
tags:
- cliplit
- image-enhancement
- backlit
- image-to-image
---

# CLIP-LIT backlit enhancement model

A `CLIPLITModel` trained with CLIP-LIT ("Iterative Prompt Learning for Unsupervised Backlit Image
Enhancement", Liang et al., ICCV 2023) by `train/train.py`, from {num_backlit} backlit and
{num_welllit} well-lit unpaired images.

- CLIP: `{args.clip_model}`; prompt length {args.prompt_length}
- steps: {progress.global_step} (prompt init {args.prompt_init_steps}, reconstruction {args.reconstruction_steps},
  rounds of {args.enhance_steps_per_round} enhancement + {args.prompt_steps_per_round} prompt steps; ended in
  stage `{progress.stage}` of round {progress.round})
- initial model: `{args.init_model}`; initial prompts: `{args.init_prompts}`
- loss weights: w_clip {args.clip_loss_weight}, w_id {args.identity_loss_weight}

`{PROMPT_FILE}` holds the learned prompt pair (row 0 backlit, row 1 well-lit) and `{ARGS_FILE}` the
training arguments.

```python
from PIL import Image
import cliplit

model = cliplit.CLIPLITModel.from_pretrained("{args.hub_model_id or output_dir}")
cliplit.enhance(model, Image.open("backlit.jpg")).save("enhanced.png")
```
"""
    (output_dir / "README.md").write_text(card)


if __name__ == "__main__":
    try:
        main()
    except CLIPLITError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
