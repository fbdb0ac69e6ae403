"""Training: data handling, an end-to-end `accelerate launch` run with 2 CPU processes, exact resume,
and a check that training does what it is for (tiny random CLIP, synthetic backlit scenes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from helpers import synthetic_scene, to_pil, write_synthetic_dataset

from conftest import REPO_ROOT
TRAIN_SCRIPT = REPO_ROOT / "train" / "train.py"
PROMPT_LENGTH = 4
RESOLUTION = 32
LAUNCH_TIMEOUT_S = 600

# Stage lengths of the end-to-end run: all three stages and two full rounds, ending inside a third.
E2E_SCHEDULE = {"prompt_init_steps": 3, "reconstruction_steps": 2, "enhance_steps_per_round": 3, "prompt_steps_per_round": 2}
E2E_MAX_STEPS = 3 + 2 + 2 * (3 + 2) + 1
CHECKPOINT_EVERY = 4
RESUME_FROM_STEP = 12  # inside the second round's enhancement phase, after one refinement


def _common_args(data: dict, clip: Path) -> list[str]:
    args = [
        "--backlit_dir", str(data["backlit"]), "--welllit_dir", str(data["welllit"]),
        "--clip_model", str(clip), "--prompt_length", str(PROMPT_LENGTH),
        "--resolution", str(RESOLUTION), "--prompt_resolution", str(RESOLUTION),
        "--train_batch_size", "2", "--prompt_batch_size", "2", "--best_check_steps", "2",
        "--dataloader_num_workers", "0", "--seed", "7", "--report_to", "tensorboard",
        "--checkpointing_steps", str(CHECKPOINT_EVERY), "--validation_steps", "5",
    ]
    for key, value in E2E_SCHEDULE.items():
        args += [f"--{key}", str(value)]
    return args


def _launch(args: list[str], processes: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "--num_processes", str(processes)]
    if processes > 1:
        command.append("--multi_gpu")
    result = subprocess.run(command + [str(TRAIN_SCRIPT), *args], cwd=REPO_ROOT, env=env, capture_output=True,
                            text=True, timeout=LAUNCH_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def tiny_clip(tiny_clip_dir) -> Path:
    return tiny_clip_dir


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    backlit, welllit = write_synthetic_dataset(tmp_path_factory.mktemp("data"), count=5, size=40)
    return {"backlit": backlit, "welllit": welllit}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, tiny_clip, data) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("full_run")
    result = _launch(_common_args(data, tiny_clip) + ["--output_dir", str(out), "--max_train_steps", str(E2E_MAX_STEPS),
                                                      "--checkpoints_total_limit", "2"])
    return out, result


# ------------------------------------------------------------------------------------------- data
def test_empty_folder_is_a_clear_error(tmp_path):
    from cliplit.training.data import DataError, folder_source

    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no image files"):
        folder_source(tmp_path / "empty", "backlit")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"nope")
    with pytest.raises(DataError, match="none of the 1 image files could be read"):
        folder_source(tmp_path / "bad", "backlit")


def test_unreadable_files_are_reported_and_skipped(tmp_path, caplog):
    from cliplit.training.data import ResizedImages, folder_source

    backlit, _ = write_synthetic_dataset(tmp_path, count=3, size=20)
    Image.new("RGB", (30, 10), (255, 0, 0)).save(backlit / "extra.webp")
    Image.new("L", (12, 12), 128).save(backlit / "gray.tif")
    with caplog.at_level("WARNING"):
        source = folder_source(backlit, "backlit")
    assert "corrupt.png" in caplog.text
    assert len(source) == 5 and all("corrupt" not in source.name(i) for i in range(len(source)))
    pixels, index = ResizedImages(source, 16)[3]
    assert pixels.shape == (3, 16, 16) and pixels.dtype == torch.uint8 and index == 3


def test_streams_are_deterministic_sharded_and_resumable():
    from cliplit.training.data import stream_indices

    def take(start, rank, count):
        stream = stream_indices(5, seed=3, start_item=start, global_batch=4, rank=rank, per_process=2)
        return [next(stream) for _ in range(count)]

    rank0, rank1 = take(0, 0, 5), take(0, 1, 5)
    flat = [i for a, b in zip(rank0, rank1) for i in a + b]
    assert sorted(flat[:5]) == list(range(5)) and sorted(flat[5:10]) == list(range(5))  # epochs are permutations
    assert take(8, 0, 3) == rank0[2:]  # resuming at item 8 continues the same stream


def test_augmentation_applies_the_same_transform_to_paired_images():
    from cliplit.training.data import PROMPT_ZOOM_RANGE, random_augment

    torch.manual_seed(0)
    images = torch.rand(8, 3, 16, 16)
    first, second = random_augment([images, images.clone()], PROMPT_ZOOM_RANGE, torch.Generator().manual_seed(1))
    assert torch.equal(first, second)
    assert not torch.allclose(first, images)
    again = random_augment([images], PROMPT_ZOOM_RANGE, torch.Generator().manual_seed(1))[0]
    assert torch.equal(again, first)


# ------------------------------------------------------------------------------------- end to end
def test_end_to_end_two_processes_all_stages_two_rounds(full_run, tiny_clip, tmp_path):
    import cliplit
    from cliplit import CLIPLITModel
    from cliplit.training.prompts import PromptPair

    out, result = full_run
    log = result.stderr + result.stdout
    for stage in ("prompt_init", "reconstruction", "enhance", "prompt_refine"):
        assert f"stage={stage}" in log
    assert "stage enhance, round 2" in log  # two full rounds completed
    assert "corrupt.png" in log  # unreadable file reported
    checkpoints = sorted(p.name for p in out.glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-12", "checkpoint-16"]  # --checkpoints_total_limit 2
    state = json.loads((out / "checkpoint-16" / "cliplit_training_state.json").read_text())
    assert state["num_results"] == 2 and state["round"] == 2
    results = load_file(str(out / "checkpoint-16" / "cliplit_training_state.safetensors"))
    assert results["results.0"].shape == (5, 3, RESOLUTION, RESOLUTION)

    args = json.loads((out / "training_args.json").read_text())
    assert args["max_train_steps"] == E2E_MAX_STEPS and args["clip_model"] == str(tiny_clip)
    assert (out / "README.md").read_text().startswith("---")
    assert list(out.glob("logs/**/events.out.tfevents.*"))
    assert list((out / "samples").glob("step_*.png"))
    pair = PromptPair.load(out)
    assert pair.embeddings.shape == (2, PROMPT_LENGTH, 32)

    model = CLIPLITModel.from_pretrained(out)
    image = to_pil(synthetic_scene(np.random.default_rng(5), 24)[1])
    enhanced = cliplit.enhance(model, image)
    assert enhanced.size == image.size


def test_resume_reaches_the_same_parameters(full_run, tiny_clip, data, tmp_path):
    full_out, _ = full_run
    out = tmp_path / "resumed"
    common = _common_args(data, tiny_clip) + ["--output_dir", str(out)]
    _launch(common + ["--max_train_steps", str(RESUME_FROM_STEP)])  # an interrupted run: stops at checkpoint-12
    assert (out / f"checkpoint-{RESUME_FROM_STEP}").is_dir()
    result = _launch(common + ["--max_train_steps", str(E2E_MAX_STEPS), "--resume_from_checkpoint", "latest"])
    assert f"checkpoint-{RESUME_FROM_STEP}" in result.stderr + result.stdout
    full_model, resumed_model = load_file(str(full_out / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert full_model.keys() == resumed_model.keys()
    for key in full_model:
        torch.testing.assert_close(resumed_model[key], full_model[key], rtol=1e-5, atol=1e-6, msg=key)
    torch.testing.assert_close(load_file(str(out / "prompt_pair.safetensors"))["embeddings"],
                               load_file(str(full_out / "prompt_pair.safetensors"))["embeddings"], rtol=1e-5, atol=1e-6)
    # and the run did change the parameters (the comparison above is not vacuous)
    early = load_file(str(out / f"checkpoint-{RESUME_FROM_STEP}" / "model.safetensors"))
    assert any(not torch.allclose(early[k], full_model[k]) for k in full_model)


# ----------------------------------------------------------------------------- does it do its job
BEHAVIOUR_ARGS = [
    "--prompt_init_steps", "60", "--reconstruction_steps", "0", "--enhance_steps_per_round", "20",
    "--prompt_steps_per_round", "0", "--max_train_steps", "80", "--resolution", "32", "--prompt_resolution", "32",
    "--train_batch_size", "4", "--prompt_batch_size", "8", "--best_check_steps", "5", "--prompt_length", str(PROMPT_LENGTH),
    # a tiny random CLIP has other feature scales than ViT-B/32: faster prompt lr, stronger identity term
    "--prompt_learning_rate", "1e-2", "--learning_rate", "1e-4", "--identity_loss_weight", "450",
    "--checkpointing_steps", "1000", "--validation_steps", "1000", "--dataloader_num_workers", "0", "--report_to", "none",
]
HELD_OUT_SCENES = 16


def test_training_separates_prompts_and_brightens_dark_regions(tmp_path, tiny_clip):
    """Stage 1 then one enhancement phase on synthetic backlit scenes, judged on held-out scenes."""
    from cliplit import CLIPLITModel
    from cliplit.training.clip_guidance import CLIPGuidance
    from cliplit.training.losses import positive_scores
    from cliplit.training.prompts import PromptPair

    backlit_dir, welllit_dir = write_synthetic_dataset(tmp_path / "data", count=12, size=48, unreadable=False)
    out = tmp_path / "out"
    _launch(["--backlit_dir", str(backlit_dir), "--welllit_dir", str(welllit_dir), "--clip_model", str(tiny_clip),
             "--output_dir", str(out), *BEHAVIOUR_ARGS], processes=1)

    rng = np.random.default_rng(123)
    scenes = [synthetic_scene(rng, RESOLUTION) for _ in range(HELD_OUT_SCENES)]
    welllit = torch.tensor(np.stack([s[0] for s in scenes])).permute(0, 3, 1, 2).float()
    backlit = torch.tensor(np.stack([s[1] for s in scenes])).permute(0, 3, 1, 2).float()
    subject = torch.tensor(np.stack([s[2] for s in scenes]))[:, None].expand_as(backlit)

    guidance, prompts = CLIPGuidance.from_pretrained(tiny_clip), PromptPair.load(out)
    with torch.no_grad():
        welllit_scores = positive_scores(prompts(guidance.image_features(welllit)[0], guidance))
        backlit_scores = positive_scores(prompts(guidance.image_features(backlit)[0], guidance))
        initial = PromptPair.from_clip(guidance, __import__("transformers").AutoTokenizer.from_pretrained(tiny_clip), PROMPT_LENGTH)
        initial_gap = (positive_scores(initial(guidance.image_features(welllit)[0], guidance)).mean()
                       - positive_scores(initial(guidance.image_features(backlit)[0], guidance)).mean()).abs()
    # the learned prompts rank well-lit above backlit; the untrained (identical) prompts could not
    assert initial_gap.item() < 1e-6
    assert welllit_scores.mean() - backlit_scores.mean() > 0.1
    pairwise = (welllit_scores[:, None] > backlit_scores[None, :]).float().mean()
    assert pairwise > 0.6

    model = CLIPLITModel.from_pretrained(out).eval()
    with torch.no_grad():
        enhanced = model(backlit).reconstruction
    dark_in, dark_out = backlit[subject].mean(), enhanced[subject].mean()
    bright_in, bright_out = backlit[~subject].mean(), enhanced[~subject].mean()
    assert dark_out > dark_in  # the darkened subject got brighter
    assert (enhanced[~subject] > 0.99).float().mean() < 0.05  # the bright background is not blown out
    assert bright_out - bright_in < 0.1


def test_imagefolder_dataset_splits_backlit_and_welllit(tmp_path):
    """`--dataset_name imagefolder`: class sub-folders become the backlit and well-lit sources."""
    pytest.importorskip("datasets", reason="the optional 'datasets' package is not installed")
    from cliplit.training.data import DataError, dataset_sources

    rng = np.random.default_rng(0)
    for label, count in (("backlit", 3), ("welllit", 2)):
        (tmp_path / "data" / label).mkdir(parents=True)
        for index in range(count):
            Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(tmp_path / "data" / label / f"{index}.png")
    backlit, welllit = dataset_sources("imagefolder", str(tmp_path / "data"), "image", "label", "backlit", "welllit",
                                       cache_dir=str(tmp_path / "cache"))
    assert (len(backlit), len(welllit)) == (3, 2)
    assert backlit.load(0).size == (16, 16) and backlit.load(0).mode == "RGB"
    with pytest.raises(DataError, match="no row has label == 'night'"):
        dataset_sources("imagefolder", str(tmp_path / "data"), "image", "label", "night", "welllit",
                        cache_dir=str(tmp_path / "cache"))
