"""The stage machine of `train/train.py` and its effective schedule (`cliplit.training.schedule`).

Training runs through stages (the rows of `PAIR_STAGES` for the learned prompt or latent pair,
`RAVE_STAGES` for RAVE's fixed residual): what trains, for how many steps, what comes next, and
whether the phase's best state carries on. One global step counter runs over them until
`max_train_steps`.

`TrainingSchedule` is the schedule a run follows, computed once from the typed arguments: the
defaults that depend on the guidance method filled in and the stages that a starting point makes
unnecessary set to 0 steps. The arguments themselves are never rewritten; the run records both
(`training_args.json` as typed, `training_schedule.json` as followed).

Pure Python: no torch, no accelerate.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from ..safety.outputs import write_text_atomically

SCHEDULE_FILE = "training_schedule.json"
GUIDANCES = ("prompts", "latent", "rave")
DEFAULT_ROUNDS = 3  # rounds (or RAVE guidance phases of --enhance_steps_per_round) when --max_train_steps is not given
# Learning rates of the guidance pair: the CLIP-LIT authors' for prompts, the RAVE authors' for the latent pair.
PAIR_LEARNING_RATES = {"prompts": 5e-6, "latent": 5e-4}
CLIP_LOSS_WEIGHT = 16 * 20  # w_clip of CLIP-LIT's enhancement loss (the authors' 16 x 20)
RAVE_LOSS_FACTOR = 6  # RAVE weighs its guidance loss 6 x w_clip (train_rave.py)

PROMPT_INIT, RECONSTRUCTION, ENHANCE, PROMPT_REFINE = "prompt_init", "reconstruction", "enhance", "prompt_refine"
GUIDANCE, NETWORK = "guidance", "network"  # what a stage trains


@dataclass(frozen=True)
class Stage:
    """One stage of training: what trains (`GUIDANCE` or `NETWORK`), the `TrainingSchedule` field that
    holds its number of steps (None: until `max_train_steps`), the stage after it, and whether the
    phase's best state (lowest mean loss) carries into the next."""

    name: str
    trains: str
    steps_field: str | None
    next: str | None
    keeps_best: bool
    round_ends: bool = False  # a new round starts after it


PAIR_STAGES = {stage.name: stage for stage in (
    Stage(PROMPT_INIT, GUIDANCE, "prompt_init_steps", RECONSTRUCTION, keeps_best=True),
    Stage(RECONSTRUCTION, NETWORK, "reconstruction_steps", ENHANCE, keeps_best=False),
    Stage(ENHANCE, NETWORK, "enhance_steps_per_round", PROMPT_REFINE, keeps_best=True),
    Stage(PROMPT_REFINE, GUIDANCE, "prompt_steps_per_round", ENHANCE, keeps_best=True, round_ends=True),
)}
RAVE_STAGES = {stage.name: stage for stage in (
    Stage(RECONSTRUCTION, NETWORK, "reconstruction_steps", ENHANCE, keeps_best=False),  # identity-only warm-up
    Stage(ENHANCE, NETWORK, None, None, keeps_best=True),  # the guidance loss, to the end
)}


@dataclass(frozen=True)
class TrainingSchedule:
    """The effective schedule of a run: stage lengths in optimizer steps, the total, the phase rules,
    and the guidance's learning rate and loss weight. Fields named after a flag hold that flag's
    effective value, which differs from the typed one where:

    - `prompt_init_steps` is 0 with `--init_prompts` (the pair is given) and for rave (no pair);
    - `reconstruction_steps` is 0 with `--init_model` (the network is given);
    - `prompt_steps_per_round` is 0 for rave (no pair to refine);
    - `max_train_steps` without the flag is the first two stages plus `DEFAULT_ROUNDS` rounds;
    - `prompt_learning_rate` without the flag is the guidance's default, None for rave (nothing learns);
    - `clip_loss_weight` without the flag is the authors' 320, 6 x that for rave.
    """

    guidance: str
    prompt_init_steps: int
    reconstruction_steps: int
    enhance_steps_per_round: int
    prompt_steps_per_round: int
    max_train_steps: int
    phase_extension_threshold: float
    phase_extension_steps: int
    best_check_steps: int
    prompt_learning_rate: float | None
    clip_loss_weight: float

    @classmethod
    def from_arguments(cls, args) -> TrainingSchedule:
        """The schedule of the parsed (and checked) arguments of `train/train.py`; `args` is not changed."""
        rave = args.guidance == "rave"
        prompt_init_steps = 0 if rave or args.init_prompts is not None else args.prompt_init_steps
        reconstruction_steps = 0 if args.init_model is not None else args.reconstruction_steps
        prompt_steps_per_round = 0 if rave else args.prompt_steps_per_round
        max_train_steps = args.max_train_steps
        if max_train_steps is None:
            rounds = DEFAULT_ROUNDS * (args.enhance_steps_per_round + prompt_steps_per_round)
            max_train_steps = prompt_init_steps + reconstruction_steps + rounds
        prompt_learning_rate = None if rave else args.prompt_learning_rate
        if prompt_learning_rate is None and not rave:
            prompt_learning_rate = PAIR_LEARNING_RATES[args.guidance]
        clip_loss_weight = args.clip_loss_weight
        if clip_loss_weight is None:
            clip_loss_weight = float(CLIP_LOSS_WEIGHT * (RAVE_LOSS_FACTOR if rave else 1))
        return cls(guidance=args.guidance, prompt_init_steps=prompt_init_steps, reconstruction_steps=reconstruction_steps,
                   enhance_steps_per_round=args.enhance_steps_per_round, prompt_steps_per_round=prompt_steps_per_round,
                   max_train_steps=max_train_steps, phase_extension_threshold=args.phase_extension_threshold,
                   phase_extension_steps=args.phase_extension_steps, best_check_steps=args.best_check_steps,
                   prompt_learning_rate=prompt_learning_rate, clip_loss_weight=clip_loss_weight)

    @property
    def stages(self) -> dict[str, Stage]:
        """The stage table of this guidance, by stage name."""
        return RAVE_STAGES if self.guidance == "rave" else PAIR_STAGES

    @property
    def first_stage(self) -> str:
        """Where a new run starts: the pair's initialization, unless it has no steps."""
        return PROMPT_INIT if PROMPT_INIT in self.stages and self.prompt_init_steps > 0 else RECONSTRUCTION

    def steps_of(self, stage: Stage) -> float:
        """The planned steps of `stage` (inf: it runs until `max_train_steps`)."""
        return math.inf if stage.steps_field is None else getattr(self, stage.steps_field)

    def as_dict(self) -> dict:
        return asdict(self)

    def save(self, folder: str | Path) -> Path:
        """Write the schedule as `folder/training_schedule.json`; returns its path."""
        path = Path(folder) / SCHEDULE_FILE
        write_text_atomically(path, json.dumps(self.as_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> TrainingSchedule:
        """The schedule a run recorded in `folder` (its output folder)."""
        return cls(**json.loads((Path(folder) / SCHEDULE_FILE).read_text()))
