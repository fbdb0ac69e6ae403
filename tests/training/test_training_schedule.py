"""The effective schedule (`cliplit.training.schedule`), computed in-process from arguments parsed by
`train/train.py`'s own parser: each guidance's defaults, what --init_model / --init_prompts skip,
--max_train_steps kept as typed, the stage tables, and the run record (`training_args.json` exactly as
typed, `training_schedule.json` as followed)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import sys

import pytest
from conftest import REPO_ROOT

from cliplit.training.schedule import (
    ENHANCE,
    PAIR_STAGES,
    PROMPT_INIT,
    PROMPT_REFINE,
    RAVE_STAGES,
    RECONSTRUCTION,
    SCHEDULE_FILE,
    TrainingSchedule,
)
from cliplit.training.state import ARGUMENTS_FILE

TRAIN_SCRIPT = REPO_ROOT / "train" / "train.py"
SCRIPT_MODULE = "cliplit_train_script"  # the name the other in-process tests of the script load it under
# The parser's defaults, as docs/training.md states them.
PROMPT_INIT_STEPS, RECONSTRUCTION_STEPS, ENHANCE_STEPS, REFINE_STEPS, ROUNDS = 8000, 1000, 2100, 1000, 3


def train_script():
    """train/train.py as a module (its dataclasses need it registered), loaded once."""
    if SCRIPT_MODULE not in sys.modules:
        spec = importlib.util.spec_from_file_location(SCRIPT_MODULE, TRAIN_SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules[SCRIPT_MODULE] = module
        spec.loader.exec_module(module)
    return sys.modules[SCRIPT_MODULE]


def typed(*extra: str, guidance: str = "prompts") -> list[str]:
    return ["--backlit_dir", "b", "--welllit_dir", "w", "--output_dir", "out", "--guidance", guidance, *extra]


def schedule_of(argv: list[str]) -> TrainingSchedule:
    return TrainingSchedule.from_arguments(train_script().parse_args(argv))


def test_each_guidance_gets_its_defaults():
    prompts, latent, rave = (schedule_of(typed(guidance=g)) for g in ("prompts", "latent", "rave"))
    pair_total = PROMPT_INIT_STEPS + RECONSTRUCTION_STEPS + ROUNDS * (ENHANCE_STEPS + REFINE_STEPS)
    assert (prompts.prompt_init_steps, prompts.reconstruction_steps, prompts.max_train_steps) == (8000, 1000, pair_total)
    assert (prompts.prompt_learning_rate, prompts.clip_loss_weight) == (5e-6, 320)  # the CLIP-LIT authors'
    assert (latent.max_train_steps, latent.prompt_learning_rate, latent.clip_loss_weight) == (pair_total, 5e-4, 320)  # RAVE's lr
    # RAVE: no pair to initialize, refine or train; its guidance loss weighs 6 x 320
    assert (rave.prompt_init_steps, rave.prompt_steps_per_round, rave.prompt_learning_rate) == (0, 0, None)
    assert rave.max_train_steps == RECONSTRUCTION_STEPS + ROUNDS * ENHANCE_STEPS and rave.clip_loss_weight == 6 * 320
    assert (prompts.first_stage, latent.first_stage, rave.first_stage) == (PROMPT_INIT, PROMPT_INIT, RECONSTRUCTION)
    assert (prompts.stages, rave.stages) == (PAIR_STAGES, RAVE_STAGES)


@pytest.mark.parametrize("guidance", ["prompts", "latent"])
def test_a_given_pair_skips_its_initialization_and_a_given_model_its_reconstruction(guidance):
    given_pair = schedule_of(typed("--init_prompts", "pair.safetensors", guidance=guidance))
    assert given_pair.prompt_init_steps == 0 and given_pair.first_stage == RECONSTRUCTION
    assert given_pair.max_train_steps == RECONSTRUCTION_STEPS + ROUNDS * (ENHANCE_STEPS + REFINE_STEPS)
    given_model = schedule_of(typed("--init_model", "clip-lit", guidance=guidance))
    assert given_model.reconstruction_steps == 0 and given_model.first_stage == PROMPT_INIT
    assert given_model.max_train_steps == PROMPT_INIT_STEPS + ROUNDS * (ENHANCE_STEPS + REFINE_STEPS)
    both = schedule_of(typed("--init_prompts", "p", "--init_model", "m", "--prompt_init_steps", "5", guidance=guidance))
    assert (both.prompt_init_steps, both.reconstruction_steps, both.max_train_steps) == (0, 0, ROUNDS * (ENHANCE_STEPS + REFINE_STEPS))


def test_rave_with_a_given_model_goes_straight_to_its_guidance_loss():
    schedule = schedule_of(typed("--init_model", "clip-lit", guidance="rave"))
    assert (schedule.prompt_init_steps, schedule.reconstruction_steps) == (0, 0)
    assert schedule.max_train_steps == ROUNDS * ENHANCE_STEPS
    assert schedule.steps_of(RAVE_STAGES[RECONSTRUCTION]) == 0 and schedule.steps_of(RAVE_STAGES[ENHANCE]) == math.inf


def test_typed_values_are_kept():
    schedule = schedule_of(typed("--max_train_steps", "17", "--init_model", "m", "--prompt_learning_rate", "0.25",
                                 "--clip_loss_weight", "3", "--enhance_steps_per_round", "4", "--prompt_steps_per_round", "2",
                                 "--phase_extension_threshold", "inf", "--phase_extension_steps", "6", "--best_check_steps", "9"))
    assert schedule.max_train_steps == 17  # typed: not recomputed although --init_model skips the reconstruction
    assert (schedule.prompt_learning_rate, schedule.clip_loss_weight) == (0.25, 3)
    assert (schedule.steps_of(PAIR_STAGES[ENHANCE]), schedule.steps_of(PAIR_STAGES[PROMPT_REFINE])) == (4, 2)
    assert (schedule.phase_extension_threshold, schedule.phase_extension_steps, schedule.best_check_steps) == (math.inf, 6, 9)
    assert schedule_of(typed("--clip_loss_weight", "0", guidance="rave")).clip_loss_weight == 0  # 0 is a value, not "unset"


def test_the_schedule_leaves_the_arguments_as_typed():
    args = train_script().parse_args(typed("--init_model", "m", "--init_prompts", "p", guidance="latent"))
    before = dict(vars(args))
    TrainingSchedule.from_arguments(args)
    assert vars(args) == before
    assert (args.prompt_learning_rate, args.clip_loss_weight, args.max_train_steps) == (None, None, None)
    assert (args.prompt_init_steps, args.reconstruction_steps) == (PROMPT_INIT_STEPS, RECONSTRUCTION_STEPS)


def test_every_stage_length_is_a_schedule_field_and_the_tables_chain():
    fields = {field.name for field in dataclasses.fields(TrainingSchedule)}
    for table in (PAIR_STAGES, RAVE_STAGES):
        for stage in table.values():
            assert stage.steps_field is None or stage.steps_field in fields, stage
            assert stage.next is None or stage.next in table, stage
    # the pair's rounds alternate enhancement and refinement; RAVE's enhancement runs to the end
    assert [PAIR_STAGES[PROMPT_INIT].next, PAIR_STAGES[RECONSTRUCTION].next, PAIR_STAGES[ENHANCE].next,
            PAIR_STAGES[PROMPT_REFINE].next] == [RECONSTRUCTION, ENHANCE, PROMPT_REFINE, ENHANCE]
    assert [stage.name for stage in PAIR_STAGES.values() if stage.round_ends] == [PROMPT_REFINE]
    assert RAVE_STAGES[ENHANCE].next is None and RAVE_STAGES[ENHANCE].steps_field is None


def test_the_schedule_is_frozen_and_its_file_round_trips(tmp_path):
    schedule = schedule_of(typed("--phase_extension_threshold", "inf", guidance="rave"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        schedule.max_train_steps = 1
    path = schedule.save(tmp_path)
    assert path == tmp_path / SCHEDULE_FILE
    assert TrainingSchedule.load(tmp_path) == schedule


def test_the_run_record_holds_the_arguments_as_typed_and_the_schedule_beside_them(tmp_path):
    """What `main` writes into --output_dir when the run starts (`record_run`)."""
    script = train_script()
    argv = typed("--init_model", "clip-lit", "--init_prompts", "pair.pth", "--enhance_steps_per_round", "7", guidance="latent")
    args = script.parse_args(argv)
    schedule = TrainingSchedule.from_arguments(args)
    script.record_run(tmp_path, args, schedule)

    recorded = json.loads((tmp_path / ARGUMENTS_FILE).read_text())
    assert recorded == json.loads(json.dumps(vars(script.parse_args(argv))))  # what argparse produced, defaults included
    assert (recorded["reconstruction_steps"], recorded["prompt_init_steps"]) == (RECONSTRUCTION_STEPS, PROMPT_INIT_STEPS)
    assert (recorded["max_train_steps"], recorded["prompt_learning_rate"], recorded["clip_loss_weight"]) == (None, None, None)
    assert (recorded["init_model"], recorded["enhance_steps_per_round"]) == ("clip-lit", 7)

    followed = json.loads((tmp_path / SCHEDULE_FILE).read_text())
    assert (followed["reconstruction_steps"], followed["prompt_init_steps"], followed["enhance_steps_per_round"]) == (0, 0, 7)
    assert followed["max_train_steps"] == ROUNDS * (7 + REFINE_STEPS)
    assert (followed["prompt_learning_rate"], followed["clip_loss_weight"]) == (5e-4, 320)
