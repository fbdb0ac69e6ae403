#!/usr/bin/env python
"""Train the CLIP-LIT enhancement network with one of the three guidance methods the RAVE work compares.

    accelerate launch train/train.py --backlit_dir B --welllit_dir W --output_dir OUT [--guidance prompts|latent|rave]

- `prompts` (default; CLIP-LIT, Liang et al., ICCV 2023): a learnable prompt pair, encoded by CLIP's
  text tower, initialized with cross-entropy and refined with margin ranking losses, alternating with
  the enhancement network's training.
- `latent` (CLIP-LIT-Latent, Gaintseva et al., ECCV 2024): the same schedule and losses with a
  learnable pair of vectors in CLIP's joint space instead of prompt tokens (no text encoder).
- `rave` (RAVE, Gaintseva et al., ECCV 2024): a fixed residual vector between the mean CLIP
  embeddings of well-lit and backlit training images, computed once; an identity-only warm-up, then
  the guidance loss. No guidance training, no alternation.

The stages are the rows of `PAIR_STAGES` / `RAVE_STAGES` (what trains, for how many steps, what comes
next, whether the phase's best state carries on); one global step counter runs over them until
`max_train_steps`. Their lengths, the total and the guidance's defaults are the run's `TrainingSchedule`,
computed once from the arguments (`cliplit.training.schedule`); the arguments are never rewritten.
Progress, snapshots, checkpoints and the resumable batch streams are `cliplit.training.state` and
`cliplit.training.data`; this script holds the arguments, the steps, the loop and the model card.

The identity loss compares CLIP RN101 features (`--identity_model`), as the authors do. The network
trains as the authors' `_noreflect` variant by default (`--train_padding_mode`) and is saved configured
for the all-reflect network they evaluate.

Everything runs batched on the accelerator's device; data workers only decode and resize images.
Batches are drawn from deterministic per-stream permutations and augmented with per-step seeded
generators, so `--resume_from_checkpoint latest` ends exactly where an uninterrupted run would.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from cliplit.errors import CLIPLITError, DataError, display_name
from cliplit.imaging.codec import EIGHT_BIT_MAX, quantize
from cliplit.model.architecture import AUTHOR_CHECKPOINT_SUFFIXES, NOREFLECT_PADDING, PUBLISHED_PADDING
from cliplit.safety.outputs import write_text_atomically
from cliplit.training.data import (
    ENHANCE_ZOOM_RANGE,
    PROMPT_ZOOM_RANGE,
    BatchStreams,
    CenterCroppedImages,
    ResizedImages,
    dataset_sources,
    folder_source,
    random_augment,
)
from cliplit.training.identity import DEFAULT_IDENTITY_MODEL, VIT_IDENTITY, require
from cliplit.training.latent import LATENT_FILE, LatentPair
from cliplit.training.prompts import PROMPT_FILE, PromptPair
from cliplit.training.rave import RESIDUAL_FILE, normalized_mean, residual_and_threshold, save_residual, shift_residual
from cliplit.training.schedule import (
    CLIP_LOSS_WEIGHT,
    DEFAULT_ROUNDS,
    ENHANCE,
    GUIDANCE,
    GUIDANCES,
    NETWORK,
    PROMPT_INIT,
    PROMPT_REFINE,
    RAVE_LOSS_FACTOR,
    RECONSTRUCTION,
    SCHEDULE_FILE,
    Stage,
    TrainingSchedule,
)
from cliplit.training.state import (
    ARGUMENTS_FILE,
    Progress,
    Snapshots,
    find_checkpoint,
    load_training_state,
    save_arguments,
    save_checkpoint,
)

logger = logging.getLogger("cliplit.train")

DEFAULT_CLIP = "openai/clip-vit-base-patch32"
RECONSTRUCTION_LOSS_SCALE = 25.0  # the authors' scale of the identity loss while learning the identity
MAX_RESULTS = 2  # the prompt refinement uses the results of the last two rounds
STEP_SEED_STRIDE = 7919
RANK_SEED_STRIDE = 104_729
EMBEDDING_BATCH = 32  # images per batch when RAVE embeds the training sets
TOKEN_BATCH = 1024  # tokens per batch when the shifted RAVE variant encodes the vocabulary

PAIR_FILES = {"prompts": PROMPT_FILE, "latent": LATENT_FILE}
GUIDANCE_FILES = {**PAIR_FILES, "rave": RESIDUAL_FILE}
GUIDANCE_NAMES = {"prompts": "CLIP-LIT (learned prompt pair)", "latent": "CLIP-LIT-Latent (learned latent pair)",
                  "rave": "RAVE (residual vector)"}
TRAIN_EXIT_FAILURE = 2  # as argparse exits on a bad option
TRAIN_PADDINGS = {"noreflect": NOREFLECT_PADDING, "reflect": PUBLISHED_PADDING}

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train a CLIP-LIT enhancement model (CLIP-LIT, CLIP-LIT-Latent or RAVE guidance).")
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
    models.add_argument("--guidance", choices=GUIDANCES, default="prompts",
                        help="prompts: CLIP-LIT's learned prompt pair (the paper); latent: CLIP-LIT-Latent's learned pair of "
                             "CLIP embeddings; rave: RAVE's fixed residual vector (no guidance training).")
    models.add_argument("--clip_model", type=str, default=DEFAULT_CLIP,
                        help="Guidance CLIP (Hub id, or a local folder with model + tokenizer for offline machines).")
    models.add_argument("--identity_model", type=str, default=DEFAULT_IDENTITY_MODEL,
                        help="Identity-loss features: an open_clip CLIP ResNet (Hub id, or a local folder with that repository's "
                             f"files for offline machines; default the authors' RN101) or '{VIT_IDENTITY}' (the guidance ViT's hidden states).")
    models.add_argument("--train_padding_mode", choices=list(TRAIN_PADDINGS), default="noreflect",
                        help="noreflect: train the authors' network with zero padding on its four outer convolutions (as they do); "
                             "reflect: reflection everywhere. The saved model is configured for reflect padding either way.")
    models.add_argument("--init_model", type=str, default=None,
                        help="Start from this enhancement model (a published model's name such as clip-lit, a Hub id, "
                             "a from_pretrained folder, or an authors' .pth) and skip reconstruction.")
    models.add_argument("--init_prompts", type=str, default=None,
                        help="Start from this prompt or latent pair (our .safetensors / folder, or the authors' .pth prompt pair) "
                             "and skip its initialization.")
    models.add_argument("--rave_shift_tokens", type=int, default=0,
                        help="RAVE: shift the residual away from this many most and least aligned text tokens (their shifted variant: 15).")
    models.add_argument("--prompt_length", type=int, default=16)

    sched = parser.add_argument_group("schedule")
    sched.add_argument("--prompt_init_steps", type=int, default=8000)
    sched.add_argument("--reconstruction_steps", type=int, default=1000)
    sched.add_argument("--enhance_steps_per_round", type=int, default=2100)
    sched.add_argument("--prompt_steps_per_round", type=int, default=1000)
    sched.add_argument("--max_train_steps", type=int, default=None,
                       help=f"Total optimizer steps over all stages (default: stages 1-2 plus {DEFAULT_ROUNDS} rounds).")
    sched.add_argument("--phase_extension_threshold", type=float, default=90.0,
                       help="An enhancement phase whose last loss is above this runs --phase_extension_steps more steps "
                            "(the authors' thre_train / thr_loss, 90); inf turns it off.")
    sched.add_argument("--phase_extension_steps", type=int, default=60)
    sched.add_argument("--best_check_steps", type=int, default=20,
                       help="Every this many steps, the mean loss since the last check picks the best model / prompt of the phase.")

    optim = parser.add_argument_group("optimization")
    optim.add_argument("--resolution", type=int, default=512, help="Enhancement training size (images resized, no crop).")
    optim.add_argument("--prompt_resolution", type=int, default=256, help="Prompt training size.")
    optim.add_argument("--train_batch_size", type=int, default=8, help="Enhancement batch per device.")
    optim.add_argument("--prompt_batch_size", type=int, default=16, help="Prompt batch per device.")
    optim.add_argument("--learning_rate", type=float, default=2e-5, help="Adam lr of the enhancement network.")
    optim.add_argument("--prompt_learning_rate", type=float, default=None,
                       help="Adam lr of the prompt / latent pair (default: 5e-6 for prompts, the CLIP-LIT authors'; 5e-4 for latent, the RAVE authors').")
    optim.add_argument("--weight_decay", type=float, default=1e-3)
    optim.add_argument("--adam_beta1", type=float, default=0.9)
    optim.add_argument("--adam_beta2", type=float, default=0.999)
    optim.add_argument("--adam_epsilon", type=float, default=1e-8)
    optim.add_argument("--clip_loss_weight", type=float, default=None,
                       help=f"Weight of the guidance loss (default: {CLIP_LOSS_WEIGHT}, the authors' 16 x 20; rave: {RAVE_LOSS_FACTOR} x that).")
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
    run.add_argument("--validation_inputs", type=str, default=None,
                     help="Paired validation: a folder of inputs whose targets (same stems) are in --validation_targets; "
                          "PSNR and SSIM (the code of `cliplit evaluate`) are logged at each validation step.")
    run.add_argument("--validation_targets", type=str, default=None)
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
    if (args.validation_inputs is None) != (args.validation_targets is None):
        parser.error("--validation_inputs and --validation_targets go together")
    if args.rave_shift_tokens < 0 or (args.rave_shift_tokens and args.guidance != "rave"):
        parser.error("--rave_shift_tokens takes a count >= 0, with --guidance rave")
    check_numbers(parser, args)
    return args


def check_numbers(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every number at parse time, against what keeps training finite and its result meaningful."""
    def bad(name: str, wanted: str) -> None:
        parser.error(f"--{name} must be {wanted}, got {getattr(args, name)}")

    finite = lambda name: math.isfinite(getattr(args, name))  # noqa: E731
    if not (finite("learning_rate") and args.learning_rate > 0):
        bad("learning_rate", "a finite number > 0")
    needs_pair_rate = args.guidance != "rave"
    if args.prompt_learning_rate is not None and not (
            finite("prompt_learning_rate") and (args.prompt_learning_rate > 0 if needs_pair_rate else args.prompt_learning_rate >= 0)):
        bad("prompt_learning_rate", "a finite number > 0" if needs_pair_rate else "a finite number >= 0")
    for name in ("weight_decay", "clip_loss_weight", "identity_loss_weight", "prompt_refine_loss_weight"):
        if getattr(args, name) is not None and not (finite(name) and getattr(args, name) >= 0):
            bad(name, "a finite number >= 0")
    for name in ("adam_beta1", "adam_beta2"):
        if not (finite(name) and 0 <= getattr(args, name) < 1):
            bad(name, "in [0, 1)")
    if not (finite("adam_epsilon") and args.adam_epsilon > 0):
        bad("adam_epsilon", "a finite number > 0")
    if math.isnan(args.phase_extension_threshold):
        bad("phase_extension_threshold", "a number (inf: never extend)")
    if args.max_train_steps is not None and args.max_train_steps < 1:
        bad("max_train_steps", "a whole number >= 1 (an untrained network is not a result)")
    for name in ("phase_extension_steps", "num_validation_images", "dataloader_num_workers"):
        if getattr(args, name) < 0:
            bad(name, ">= 0")
    if args.checkpoints_total_limit is not None and args.checkpoints_total_limit < 1:
        bad("checkpoints_total_limit", ">= 1")


# ------------------------------------------------------------------------------------------ helpers
def step_generator(args, global_step: int, micro: int, rank: int) -> torch.Generator:
    """CPU generator for one micro-batch's augmentation: a pure function of (seed, step, micro-batch, rank)."""
    seed = args.seed + STEP_SEED_STRIDE * (global_step * args.gradient_accumulation_steps + micro) + RANK_SEED_STRIDE * rank
    return torch.Generator().manual_seed(seed)


def load_sources(args):
    if args.dataset_name is not None:
        return dataset_sources(args.dataset_name, args.train_data_dir, args.image_column, args.label_column,
                               args.backlit_label, args.welllit_label, args.cache_dir)
    return folder_source(args.backlit_dir, "backlit"), folder_source(args.welllit_dir, "well-lit")


def load_initial_pair(args, guidance, tokenizer):
    """The guidance pair to start from: a prompt pair ("X X ... X") or a latent pair (N(0, 1)), or --init_prompts."""
    if args.guidance == "latent":
        fresh = LatentPair.random(guidance.projection_dim, torch.Generator().manual_seed(args.seed))
        return fresh if args.init_prompts is None else LatentPair.load(args.init_prompts)
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


def paired_validation_set(args) -> list[tuple[Path, Path]]:
    """(input, target) pairs of --validation_inputs / --validation_targets, matched by stem."""
    if args.validation_inputs is None:
        return []
    from cliplit.evaluation.evaluate import index_by_stem

    inputs = index_by_stem(Path(args.validation_inputs), "--validation_inputs")
    targets = index_by_stem(Path(args.validation_targets), "--validation_targets")
    pairs = [(inputs[stem], targets[stem]) for stem in sorted(inputs) if stem in targets]
    if not pairs:
        raise DataError(f"{args.validation_inputs}: no input has a target with the same stem in {args.validation_targets}")
    return pairs


def image_grid(rows: list[torch.Tensor]) -> torch.Tensor:
    """rows: tensors (N, 3, H, W) in [0, 1] -> one (3, rows*H, N*W) image."""
    return torch.cat([torch.cat(list(row), dim=-1) for row in rows], dim=-2)


def load_clip(args, accelerator):
    """The frozen guidance CLIP and its tokenizer, with a one-line error naming the flag when offline."""
    from transformers import AutoTokenizer

    from cliplit.training.clip_guidance import CLIPGuidance

    try:
        return CLIPGuidance.from_pretrained(args.clip_model).to(accelerator.device), AutoTokenizer.from_pretrained(args.clip_model)
    except OSError as error:
        raise CLIPLITError(f"{args.clip_model}: cannot load the guidance CLIP ({str(error).splitlines()[0]}); offline, "
                           "save a CLIP model and its tokenizer in a folder and pass --clip_model FOLDER") from None


# ------------------------------------------------------------------------------------------ training
class Trainer:
    """
    The run: models, optimizers, data streams and the stage machine (`schedule.stages`). `run()` steps
    until the schedule's `max_train_steps`; `finish()` writes the output folder.
    """

    def __init__(self, args, schedule: TrainingSchedule, accelerator, log):
        from cliplit.model.configuration_cliplit import CLIPLITConfig
        from cliplit.model.loading import load_model
        from cliplit.model.modeling_cliplit import CLIPLITModel
        from cliplit.training.identity import ViTIdentity, load_identity_model

        self.args, self.schedule, self.accelerator, self.log = args, schedule, accelerator, log
        self.output_dir = Path(args.output_dir)
        self.stages = schedule.stages

        # ---- data (workers decode and resize only)
        self.backlit_source, self.welllit_source = load_sources(args)
        log.info(f"{len(self.backlit_source)} backlit and {len(self.welllit_source)} well-lit training images",
                 main_process_only=True)
        self.half = args.prompt_batch_size // 2
        self.datasets = {
            "backlit_prompt": ResizedImages(self.backlit_source, args.prompt_resolution),
            "welllit_prompt": ResizedImages(self.welllit_source, args.prompt_resolution),
            "backlit_enhance": ResizedImages(self.backlit_source, args.resolution),
        }

        # ---- frozen critics
        self.guidance, tokenizer = load_clip(args, accelerator)
        self.identity = load_identity_model(args.identity_model, self.guidance).to(accelerator.device)
        self.identity_is_vit = isinstance(self.identity, ViTIdentity)

        # ---- the network, trained as the chosen padding variant
        padding_mode, outer_padding_mode = TRAIN_PADDINGS[args.train_padding_mode]
        if args.init_model is not None:
            model = load_model(args.init_model)
            model.set_padding(padding_mode, outer_padding_mode)
        else:
            model = CLIPLITModel(CLIPLITConfig(padding_mode=padding_mode, outer_padding_mode=outer_padding_mode))
            model.start_from_identity()
        log.info(f"training the network with padding {padding_mode}, outer convolutions {outer_padding_mode or padding_mode}",
                 main_process_only=True)
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                     eps=args.adam_epsilon, weight_decay=args.weight_decay)

        # ---- the guidance pair (prompts, latent) or nothing to train (rave)
        self.pair = None
        if args.guidance == "rave":
            model, optimizer = accelerator.prepare(model, optimizer)
        else:
            pair = load_initial_pair(args, self.guidance.to("cpu"), tokenizer)
            self.guidance.to(accelerator.device)
            pair_optimizer = torch.optim.Adam(pair.parameters(), lr=schedule.prompt_learning_rate,
                                              betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon,
                                              weight_decay=args.weight_decay)
            model, pair, optimizer, pair_optimizer = accelerator.prepare(model, pair, optimizer, pair_optimizer)
            self.pair, self.pair_optimizer = pair, pair_optimizer
            self.raw_pair = accelerator.unwrap_model(pair)
        self.model, self.optimizer = model, optimizer
        self.raw_model = accelerator.unwrap_model(model)

        # ---- where training is (resume)
        self.progress, self.snapshots = Progress(stage=schedule.first_stage), Snapshots()
        if args.resume_from_checkpoint:
            folder = find_checkpoint(self.output_dir, args.resume_from_checkpoint)
            if folder is None:
                log.info("no checkpoint to resume from: starting a new run", main_process_only=True)
            else:
                log.info(f"resuming from {folder}", main_process_only=True)
                self.progress, self.snapshots = load_training_state(accelerator, folder)
        self.streams = BatchStreams(self.datasets, {"backlit_prompt": self.half, "welllit_prompt": self.half,
                                                    "backlit_enhance": args.train_batch_size},
                                    self.progress.stream_items, accelerator, args.seed, args.dataloader_num_workers)
        if args.guidance == "rave" and self.snapshots.rave_residual is None:
            self.snapshots.rave_residual, self.progress.rave_threshold = self.rave_direction(tokenizer)
        self.text_embeds = None
        self.validation_indices = list(range(min(args.num_validation_images, len(self.datasets["backlit_enhance"]))))
        self.validation_pairs = paired_validation_set(args)

    # ---- RAVE's residual vector, once
    @torch.no_grad()
    def mean_embedding(self, source) -> torch.Tensor:
        """The normalized mean of the L2-normalized CLIP embeddings of every image of `source` (sharded, reduced)."""
        accelerator = self.accelerator
        dataset = CenterCroppedImages(source, self.guidance.image_size)
        mine = Subset(dataset, range(accelerator.process_index, len(dataset), accelerator.num_processes))
        total = torch.zeros(self.guidance.projection_dim, device=accelerator.device, dtype=torch.float64)
        for pixels, _ in DataLoader(mine, batch_size=EMBEDDING_BATCH, num_workers=self.args.dataloader_num_workers):
            embeds, _ = self.guidance.image_features(pixels.to(accelerator.device).float() / EIGHT_BIT_MAX)
            total += F.normalize(embeds.double(), dim=-1).sum(0)
        return normalized_mean(accelerator.reduce(total, reduction="sum"), len(dataset))

    @torch.no_grad()
    def rave_direction(self, tokenizer) -> tuple[torch.Tensor, float]:
        mean_welllit, mean_backlit = self.mean_embedding(self.welllit_source), self.mean_embedding(self.backlit_source)
        residual, _ = residual_and_threshold(mean_welllit, mean_backlit)
        if self.args.rave_shift_tokens:
            residual = shift_residual(residual, self.token_embeddings(tokenizer), self.args.rave_shift_tokens)
        threshold = float(F.normalize(mean_welllit, dim=0) @ residual)
        self.log.info(f"RAVE residual computed (threshold {threshold:.4f})", main_process_only=True)
        return residual.float().cpu(), threshold

    @torch.no_grad()
    def token_embeddings(self, tokenizer) -> torch.Tensor:
        """CLIP text embeddings of every single token of the vocabulary ([SOT, token, EOT]): (V, projection_dim)."""
        special = set(tokenizer.all_special_ids)
        tokens = [i for i in range(len(tokenizer)) if i not in special]
        sot, eot = tokenizer.bos_token_id, tokenizer.eos_token_id
        chunks = []
        for start in range(0, len(tokens), TOKEN_BATCH):
            ids = torch.tensor([[sot, t, eot] for t in tokens[start:start + TOKEN_BATCH]], device=self.accelerator.device)
            chunks.append(self.guidance.encode_text_embeddings(self.guidance.token_embeddings(ids), eot_index=2).double())
        return torch.cat(chunks)

    # ---- one micro-batch of each stage: returns (loss, extra scalars)
    def pair_init_micro(self, generator):
        from cliplit.training.losses import prompt_initialization_loss

        backlit, _ = self.streams.next("backlit_prompt")
        welllit, _ = self.streams.next("welllit_prompt")
        images = random_augment([torch.cat([backlit, welllit])], PROMPT_ZOOM_RANGE, generator)[0]
        labels = torch.cat([torch.zeros(len(backlit)), torch.ones(len(welllit))]).long().to(images.device)
        with torch.no_grad(), self.accelerator.autocast():
            embeds, _ = self.guidance.image_features(images)
        with self.accelerator.autocast():
            logits = self.pair(embeds.float(), self.guidance)
        return prompt_initialization_loss(logits, labels), {}

    def pair_refine_micro(self, generator):
        from cliplit.training.losses import positive_scores, prompt_refinement_loss

        backlit, indices = self.streams.next("backlit_prompt")
        welllit, _ = self.streams.next("welllit_prompt")
        results = [r[indices].to(backlit.device).float() / EIGHT_BIT_MAX for r in self.snapshots.results]
        augmented = random_augment([backlit, *results], PROMPT_ZOOM_RANGE, generator)
        welllit = random_augment([welllit], PROMPT_ZOOM_RANGE, generator)[0]
        groups = [*augmented, welllit]
        with torch.no_grad(), self.accelerator.autocast():
            embeds, _ = self.guidance.image_features(torch.cat(groups))
        with self.accelerator.autocast():
            logits = self.pair(embeds.float(), self.guidance)
        scores = positive_scores(logits).split([len(g) for g in groups])
        return self.args.prompt_refine_loss_weight * prompt_refinement_loss(scores[0], scores[-1], scores[1:-1]), {}

    def network_micro(self, generator, reconstruction: bool):
        from cliplit.training.clip_guidance import cosine_logits
        from cliplit.training.losses import (
            IDENTITY_WEIGHTS,
            RECONSTRUCTION_WEIGHTS,
            clip_enhancement_loss,
            identity_loss,
            rave_guidance_loss,
        )

        backlit, _ = self.streams.next("backlit_enhance")
        backlit = random_augment([backlit], ENHANCE_ZOOM_RANGE, generator)[0]
        with self.accelerator.autocast():
            enhanced = self.model(backlit).reconstruction
            out_identity = self.identity(enhanced)
            with torch.no_grad():
                in_identity = self.identity(backlit)
        if reconstruction:
            return RECONSTRUCTION_LOSS_SCALE * identity_loss(out_identity, in_identity, RECONSTRUCTION_WEIGHTS), {}
        with self.accelerator.autocast():
            out_embeds, _ = self.guidance.image_features(enhanced)
        if self.args.guidance == "rave":
            l_guide = rave_guidance_loss(out_embeds.float(), self.snapshots.rave_residual, self.progress.rave_threshold)
        else:
            l_guide = clip_enhancement_loss(cosine_logits(out_embeds.float(), self.text_embeds))
        l_id = identity_loss(out_identity, in_identity, IDENTITY_WEIGHTS)
        loss = self.schedule.clip_loss_weight * l_guide + self.args.identity_loss_weight * l_id
        return loss, {"loss_guidance": l_guide.detach(), "loss_identity": l_id.detach()}

    def micro(self, stage: Stage, generator):
        if stage.name == PROMPT_INIT:
            return self.pair_init_micro(generator)
        if stage.name == PROMPT_REFINE:
            return self.pair_refine_micro(generator)
        return self.network_micro(generator, reconstruction=stage.name == RECONSTRUCTION)

    # ---- phases
    def phase_length(self, stage: Stage) -> float:
        return self.schedule.steps_of(stage) + self.progress.phase_extension

    def extend_phase(self, stage: Stage) -> bool:
        """The authors' rule: an enhancement phase (after the reconstruction) whose last loss is above
        --phase_extension_threshold runs --phase_extension_steps more steps."""
        schedule = self.schedule
        if stage.name != ENHANCE or not self.progress.last_loss > schedule.phase_extension_threshold:
            return False
        self.progress.phase_extension += schedule.phase_extension_steps
        self.log.info(f"step {self.progress.global_step}: loss {self.progress.last_loss:.2f} above "
                      f"{schedule.phase_extension_threshold:g}: enhancement phase extended by {schedule.phase_extension_steps} steps",
                      main_process_only=True)
        return True

    @torch.no_grad()
    def compute_results(self) -> torch.Tensor:
        """Outputs of the (best) model on all training backlit images, at the prompt resolution, uint8 on the CPU."""
        accelerator, args = self.accelerator, self.args
        self.raw_model.eval()
        count = len(self.datasets["backlit_enhance"])
        mine = list(range(accelerator.process_index, count, accelerator.num_processes))
        per_process = math.ceil(count / accelerator.num_processes)
        mine += [mine[-1] if mine else 0] * (per_process - len(mine))
        loader = DataLoader(Subset(self.datasets["backlit_enhance"], mine), batch_size=args.train_batch_size,
                            num_workers=args.dataloader_num_workers)
        outputs, positions = [], []
        for pixels, idx in loader:
            pixels = pixels.to(accelerator.device).float() / EIGHT_BIT_MAX
            with accelerator.autocast():
                enhanced = self.raw_model(pixels).reconstruction.float()
            enhanced = F.interpolate(enhanced, size=(args.prompt_resolution,) * 2, mode="bilinear",
                                     align_corners=False, antialias=True)
            outputs.append(quantize(enhanced, 8))
            positions.append(idx.to(accelerator.device))
        self.raw_model.train()
        gathered = accelerator.gather(torch.cat(outputs)).cpu()
        gathered_idx = accelerator.gather(torch.cat(positions)).cpu()
        results = torch.zeros((count, 3, args.prompt_resolution, args.prompt_resolution), dtype=torch.uint8)
        results[gathered_idx] = gathered
        return results

    def apply_best(self) -> None:
        """Load the phase's best snapshot (if any) into the live network / pair."""
        stage = self.stages[self.progress.stage]
        if not stage.keeps_best:
            return
        if stage.trains == NETWORK and self.snapshots.best_model is not None:
            self.raw_model.load_state_dict(self.snapshots.best_model)
        if stage.trains == GUIDANCE and self.snapshots.best_guidance is not None:
            with torch.no_grad():
                self.raw_pair.embeddings.copy_(self.snapshots.best_guidance)

    def end_phase(self) -> None:
        progress, stage = self.progress, self.stages[self.progress.stage]
        self.apply_best()
        if stage.name == ENHANCE and self.pair is not None:  # the results the refinement ranks
            self.snapshots.results = (self.snapshots.results + [self.compute_results()])[-MAX_RESULTS:]
            progress.num_results = len(self.snapshots.results)
        progress.stage = stage.next
        progress.round += int(stage.round_ends)
        progress.phase_step = 0
        progress.phase_extension = 0
        progress.losses_since_check = []
        progress.best_value = math.inf
        self.snapshots.best_model, self.snapshots.best_guidance = None, None
        self.text_embeds = None
        self.log.info(f"step {progress.global_step}: stage {progress.stage}, round {progress.round}", main_process_only=True)

    def track_best(self, stage: Stage, loss_value: float) -> None:
        """Every --best_check_steps steps keep the phase's state with the lowest mean loss."""
        progress = self.progress
        progress.losses_since_check.append(loss_value)
        if progress.phase_step % self.schedule.best_check_steps != 0 or not stage.keeps_best:
            return
        mean = sum(progress.losses_since_check) / len(progress.losses_since_check)
        progress.losses_since_check = []
        if mean < progress.best_value:
            progress.best_value = mean
            if stage.trains == NETWORK:
                self.snapshots.best_model = {k: v.detach().cpu().clone() for k, v in self.raw_model.state_dict().items()}
            else:
                self.snapshots.best_guidance = self.raw_pair.embeddings.detach().cpu().clone()

    @torch.no_grad()
    def log_validation(self) -> None:
        if not self.accelerator.is_main_process or not self.validation_indices:
            return
        from PIL import Image

        self.raw_model.eval()
        inputs = torch.stack([self.datasets["backlit_enhance"][i][0] for i in self.validation_indices])
        inputs = inputs.to(self.accelerator.device).float() / EIGHT_BIT_MAX
        outputs = self.raw_model(inputs).reconstruction.float().clamp(0, 1)
        self.raw_model.train()
        grid = image_grid([inputs, outputs]).cpu()
        samples = self.output_dir / "samples"
        samples.mkdir(exist_ok=True)
        Image.fromarray(quantize(grid.permute(1, 2, 0), 8).numpy()).save(samples / f"step_{self.progress.global_step:07d}.png")
        for tracker in self.accelerator.trackers:
            if tracker.name == "tensorboard":
                tracker.writer.add_image("validation/before_after", grid, self.progress.global_step)
        if self.validation_pairs:
            scores = self.paired_scores()
            self.accelerator.log({f"validation/{metric}": value for metric, value in scores.items()}, step=self.progress.global_step)
            self.log.info(f"step {self.progress.global_step}: validation " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))

    @torch.no_grad()
    def paired_scores(self) -> dict[str, float]:
        """Mean PSNR and SSIM of the network's 8-bit outputs (full resolution) against the validation targets."""
        from cliplit.evaluation.evaluate import mean_of, same_depth
        from cliplit.evaluation.metrics import psnr, ssim
        from cliplit.imaging.codec import encode_array
        from cliplit.imaging.files import read_image
        from cliplit.model.network import apply_illumination

        values = {"psnr": [], "ssim": []}
        self.raw_model.eval()
        for source, target_path in self.validation_pairs:
            decoded = read_image(source)
            pixels = torch.from_numpy(decoded.pixels).permute(2, 0, 1)[None].to(self.accelerator.device)
            enhanced = apply_illumination(pixels, self.raw_model.estimate_illumination(pixels)).float().cpu()
            decoded.pixels = enhanced[0].permute(1, 2, 0).numpy()
            output, target = same_depth(encode_array(decoded), encode_array(read_image(target_path)))
            if output.shape[:2] == target.shape[:2]:
                values["psnr"].append(psnr(output, target))
                values["ssim"].append(ssim(output, target))
        self.raw_model.train()
        return {metric: mean_of(scores)[0] for metric, scores in values.items() if scores}

    # ---- the loop
    def run(self) -> None:
        from tqdm.auto import tqdm

        args, accelerator, progress = self.args, self.accelerator, self.progress
        max_train_steps = self.schedule.max_train_steps
        bar = tqdm(total=max_train_steps, initial=progress.global_step, disable=not accelerator.is_local_main_process)
        while progress.global_step < max_train_steps:
            stage = self.stages[progress.stage]
            if progress.phase_step >= self.phase_length(stage):
                if not self.extend_phase(stage):
                    self.end_phase()
                continue
            self.streams.per_process["backlit_prompt"] = self.half if stage.name == PROMPT_INIT else args.prompt_batch_size
            self.streams.per_process["welllit_prompt"] = self.streams.per_process["backlit_prompt"]
            if stage.trains == GUIDANCE:
                module, optimizer = self.pair, self.pair_optimizer
            else:
                module, optimizer = self.model, self.optimizer
                if self.text_embeds is None and stage.name == ENHANCE and self.pair is not None:
                    with torch.no_grad():
                        self.text_embeds = self.raw_pair.text_embeddings(self.guidance).float()
            total, extras = 0.0, {}
            for micro in range(args.gradient_accumulation_steps):
                generator = step_generator(args, progress.global_step, micro, accelerator.process_index)
                with accelerator.accumulate(module):
                    loss, extras = self.micro(stage, generator)
                    accelerator.backward(loss)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                total = total + loss.detach()
            mean_loss = accelerator.reduce(total / args.gradient_accumulation_steps, reduction="mean").item()
            progress.global_step += 1
            progress.phase_step += 1
            progress.last_loss = mean_loss
            self.track_best(stage, mean_loss)
            bar.update(1)
            bar.set_postfix(stage=stage.name, round=progress.round, loss=f"{mean_loss:.4f}")
            accelerator.log({f"{stage.name}/loss": mean_loss, **{f"{stage.name}/{k}": v.item() for k, v in extras.items()}},
                            step=progress.global_step)
            if progress.global_step % args.checkpointing_steps == 0:
                folder = save_checkpoint(accelerator, self.output_dir, args.checkpoints_total_limit, progress, self.snapshots)
                self.log.info(f"saved state to {folder}", main_process_only=True)
            if progress.global_step % args.validation_steps == 0:
                self.log_validation()
        bar.close()

    def finish(self) -> None:
        """The best states of the running phase, then a from_pretrained folder configured for reflect padding,
        what the guidance learned or computed and a model card (the arguments and the schedule are written
        when the run starts)."""
        self.apply_best()
        self.accelerator.wait_for_everyone()
        if not self.accelerator.is_main_process:
            return
        self.log_validation()
        self.raw_model.set_padding(*PUBLISHED_PADDING)  # as the authors evaluate their _noreflect training
        self.raw_model.save_pretrained(self.output_dir)
        if self.pair is not None:
            self.raw_pair.save(self.output_dir / PAIR_FILES[self.args.guidance])
        else:
            save_residual(self.output_dir / RESIDUAL_FILE, self.snapshots.rave_residual, self.progress.rave_threshold)
        write_model_card(self.output_dir, self.args, self.schedule, self.progress, len(self.backlit_source),
                         len(self.welllit_source))


def check_places(args) -> None:
    """The output-safety rule, before anything is loaded: --output_dir never is, or lies inside, what is read."""
    from cliplit.safety.outputs import Reads, check_output_folder

    reads = Reads()
    for folder in (args.backlit_dir, args.welllit_dir, args.train_data_dir, args.validation_inputs, args.validation_targets):
        if folder is not None:
            reads.add_folder(folder, recursive=True)
    for spec in (args.init_model, args.init_prompts, args.clip_model, args.identity_model):
        if spec is not None and Path(spec).expanduser().exists():
            reads.add_model(Path(spec).expanduser())
    check_output_folder(args.output_dir, reads, "--output_dir")
    if args.init_prompts is not None and not Path(args.init_prompts).expanduser().exists():
        raise DataError(f"{display_name(args.init_prompts)}: --init_prompts: no such file or folder")


def hub_needs(args) -> dict[str, tuple[str, str]]:
    """The Hub models the run loads, by flag, with what to do offline."""
    needs = {"--clip_model": (args.clip_model, "save a CLIP model and its tokenizer in a folder and pass --clip_model FOLDER")}
    if args.identity_model != VIT_IDENTITY:
        needs["--identity_model"] = (args.identity_model, f"put the files of the Hub repository {DEFAULT_IDENTITY_MODEL} "
                                     "in a folder and pass --identity_model FOLDER")
    return needs


def main(argv: list[str] | None = None) -> None:
    from cliplit.training.hub import prepare_hub_access

    args = parse_args(argv)
    schedule = TrainingSchedule.from_arguments(args)
    require("accelerate")
    if args.identity_model != VIT_IDENTITY:
        require("open_clip")
    check_places(args)
    if not args.push_to_hub:  # a push needs the Hub: its repository is created (or refused) below
        prepare_hub_access(hub_needs(args))  # offline or unreachable: seconds, not the Hub client's retries
    from accelerate import Accelerator
    from accelerate.logging import get_logger
    from accelerate.utils import GradientAccumulationPlugin, ProjectConfiguration, set_seed

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
        record_run(output_dir, args, schedule)
    repo_id = None
    if args.push_to_hub and accelerator.is_main_process:  # a bad token fails now, not after training
        from huggingface_hub import create_repo

        try:
            repo_id = create_repo(args.hub_model_id, exist_ok=True, token=args.hub_token).repo_id
        except Exception as error:  # noqa: BLE001 - huggingface_hub raises many types
            raise CLIPLITError(f"--hub_model_id {args.hub_model_id}: cannot create the repository ({str(error).splitlines()[0]})") from None
    set_seed(args.seed)
    trainer = Trainer(args, schedule, accelerator, log)
    if report_to is not None:
        recorded = {**vars(args), **{f"schedule.{k}": v for k, v in schedule.as_dict().items()}}
        config = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in recorded.items()}
        accelerator.init_trackers("cliplit", config=config)
    trainer.run()
    trainer.finish()
    if repo_id is not None:
        from huggingface_hub import upload_folder

        upload_folder(repo_id=repo_id, folder_path=str(output_dir), token=args.hub_token, commit_message="CLIP-LIT training",
                      ignore_patterns=["checkpoint-*", "checkpoint-*/**", "logs/**"])
    accelerator.end_training()


def record_run(output_dir: Path, args: argparse.Namespace, schedule: TrainingSchedule) -> None:
    """The arguments as typed (`training_args.json`) and the schedule the run follows (`training_schedule.json`)."""
    save_arguments(output_dir, vars(args))
    schedule.save(output_dir)


def write_model_card(output_dir: Path, args, schedule: TrainingSchedule, progress: Progress, num_backlit: int,
                     num_welllit: int) -> None:
    """A README.md model card describing the run (its stage lengths and loss weights as followed: the schedule)."""
    guidance_rate = "none (nothing learned)" if schedule.prompt_learning_rate is None else schedule.prompt_learning_rate
    card = f"""---
library_name: transformers
tags:
- cliplit
- image-enhancement
- backlit
- image-to-image
---

# CLIP-LIT backlit enhancement model

A `CLIPLITModel` trained by cliplit's `train/train.py` with {GUIDANCE_NAMES[args.guidance]} guidance,
from {num_backlit} backlit and {num_welllit} well-lit images (the network of CLIP-LIT, "Iterative Prompt
Learning for Unsupervised Backlit Image Enhancement", Liang et al., ICCV 2023).

- guidance CLIP: `{args.clip_model}`; identity features: `{args.identity_model}`
- steps: {progress.global_step} of {schedule.max_train_steps} (guidance initialization {schedule.prompt_init_steps},
  reconstruction {schedule.reconstruction_steps}, enhancement phases of {schedule.enhance_steps_per_round} steps,
  guidance refinement phases of {schedule.prompt_steps_per_round} steps; ended in stage `{progress.stage}` of round
  {progress.round})
- trained as the `{args.train_padding_mode}` network; saved configured for reflect padding
- initial model: `{args.init_model}`; initial pair: `{args.init_prompts}`
- learning rates: network {args.learning_rate}, guidance {guidance_rate}
- loss weights: guidance {schedule.clip_loss_weight}, identity {args.identity_loss_weight}

`{GUIDANCE_FILES[args.guidance]}` holds what the guidance learned or computed, `{ARGUMENTS_FILE}` the
training arguments as typed and `{SCHEDULE_FILE}` the schedule they gave.

```python
from PIL import Image
import cliplit

model = cliplit.CLIPLITModel.from_pretrained("{args.hub_model_id or output_dir}")
cliplit.enhance(model, Image.open("backlit.jpg")).save("enhanced.png")
```
"""
    write_text_atomically(output_dir / "README.md", card)


if __name__ == "__main__":
    from cliplit.safety.boundary import run_entry_point

    sys.exit(run_entry_point(main, failure_status=TRAIN_EXIT_FAILURE))
