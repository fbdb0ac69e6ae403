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
from conftest import REPO_ROOT
from helpers import synthetic_scene, to_pil, write_synthetic_dataset, write_tiny_resnet_clip
from PIL import Image
from safetensors.torch import load_file

TRAIN_SCRIPT = REPO_ROOT / "train" / "train.py"
PROMPT_LENGTH = 4
RESOLUTION = 32
LAUNCH_TIMEOUT_S = 600

# Stage lengths of the end-to-end run: all three stages and two full rounds, ending inside a third.
E2E_SCHEDULE = {"prompt_init_steps": 3, "reconstruction_steps": 2, "enhance_steps_per_round": 3, "prompt_steps_per_round": 2}
E2E_MAX_STEPS = 3 + 2 + 2 * (3 + 2) + 1
CHECKPOINT_EVERY = 4
RESUME_FROM_STEP = 12  # inside the second round's enhancement phase, after one refinement


def _common_args(data: dict, clip: Path, identity: Path, guidance: str = "prompts") -> list[str]:
    args = [
        "--backlit_dir", str(data["backlit"]), "--welllit_dir", str(data["welllit"]), "--guidance", guidance,
        "--clip_model", str(clip), "--identity_model", str(identity), "--prompt_length", str(PROMPT_LENGTH),
        "--resolution", str(RESOLUTION), "--prompt_resolution", str(RESOLUTION),
        "--train_batch_size", "2", "--prompt_batch_size", "2", "--best_check_steps", "2",
        "--dataloader_num_workers", "0", "--seed", "7", "--report_to", "tensorboard",
        "--checkpointing_steps", str(CHECKPOINT_EVERY), "--validation_steps", "5",
        "--phase_extension_threshold", "inf",  # the schedule below is exact (the extension is tested apart)
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
def tiny_resnet(tmp_path_factory) -> Path:
    """A tiny random CLIP ResNet for the identity loss, in the layout of `timm/resnet101_clip.openai`."""
    pytest.importorskip("open_clip", reason="open_clip_torch is in the training extra")
    return write_tiny_resnet_clip(tmp_path_factory.mktemp("tiny_resnet"))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    backlit, welllit = write_synthetic_dataset(tmp_path_factory.mktemp("data"), count=5, size=40)
    return {"backlit": backlit, "welllit": welllit}


GUIDANCE_STAGES = {"prompts": ("prompt_init", "reconstruction", "enhance", "prompt_refine"),
                   "latent": ("prompt_init", "reconstruction", "enhance", "prompt_refine"),
                   "rave": ("reconstruction", "enhance")}
GUIDANCE_FILES = {"prompts": "prompt_pair.safetensors", "latent": "latent_pair.safetensors", "rave": "rave_residual.safetensors"}


@pytest.fixture(scope="module", params=list(GUIDANCE_STAGES))
def full_run(request, tmp_path_factory, tiny_clip, tiny_resnet, data) -> tuple[str, Path, subprocess.CompletedProcess]:
    guidance = request.param
    out = tmp_path_factory.mktemp(f"full_run_{guidance}")
    result = _launch(_common_args(data, tiny_clip, tiny_resnet, guidance)
                     + ["--output_dir", str(out), "--max_train_steps", str(E2E_MAX_STEPS), "--checkpoints_total_limit", "2"])
    return guidance, out, result


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
@pytest.mark.slow
def test_end_to_end_two_processes_every_stage(full_run, tiny_clip, tiny_resnet):
    import cliplit
    from cliplit import CLIPLITModel
    from cliplit.training.latent import LatentPair
    from cliplit.training.prompts import PromptPair
    from cliplit.training.rave import load_residual

    guidance, out, result = full_run
    log = result.stderr + result.stdout
    for stage in GUIDANCE_STAGES[guidance]:
        assert f"stage={stage}" in log
    if guidance == "rave":
        assert "stage=prompt" not in log and "RAVE residual computed" in log
    else:
        assert "stage enhance, round 2" in log  # two full rounds completed
    assert "corrupt.png" in log  # unreadable file reported
    assert "training the network with padding reflect, outer convolutions zeros" in log  # the authors' _noreflect
    checkpoints = sorted(p.name for p in out.glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-12", "checkpoint-16"]  # --checkpoints_total_limit 2
    state = json.loads((out / "checkpoint-16" / "cliplit_training_state.json").read_text())
    tensors = load_file(str(out / "checkpoint-16" / "cliplit_training_state.safetensors"))
    if guidance == "rave":
        assert state["num_results"] == 0 and tensors["rave_residual"].shape == (16,) and state["rave_threshold"] is not None
    else:
        assert state["num_results"] == 2 and state["round"] == 2
        assert tensors["results.0"].shape == (5, 3, RESOLUTION, RESOLUTION)

    args = json.loads((out / "training_args.json").read_text())
    assert args["max_train_steps"] == E2E_MAX_STEPS and args["clip_model"] == str(tiny_clip)
    assert args["guidance"] == guidance and args["train_padding_mode"] == "noreflect"
    assert args["identity_model"] == str(tiny_resnet)
    assert args["prompt_learning_rate"] is None and args["clip_loss_weight"] is None  # as typed, not filled in
    schedule = json.loads((out / "training_schedule.json").read_text())
    assert schedule["max_train_steps"] == E2E_MAX_STEPS and schedule["guidance"] == guidance
    assert schedule["prompt_init_steps"] == (0 if guidance == "rave" else E2E_SCHEDULE["prompt_init_steps"])
    assert "training_schedule.json" in (out / "README.md").read_text()
    assert (out / "README.md").read_text().startswith("---")
    assert list(out.glob("logs/**/events.out.tfevents.*"))
    assert list((out / "samples").glob("step_*.png"))
    assert (out / GUIDANCE_FILES[guidance]).is_file()
    if guidance == "prompts":
        assert PromptPair.load(out).embeddings.shape == (2, PROMPT_LENGTH, 32)
    elif guidance == "latent":
        assert LatentPair.load(out).embeddings.shape == (2, 16)
    else:
        residual, threshold = load_residual(out)
        assert residual.shape == (16,) and abs(residual.norm().item() - 1) < 1e-5 and -1 < threshold < 1

    config = json.loads((out / "config.json").read_text())
    assert config["padding_mode"] == "reflect" and config["outer_padding_mode"] in (None, "reflect")
    model = CLIPLITModel.from_pretrained(out)
    assert {m.padding_mode for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)
            and m is not model.pyramid_pooling.fuse_conv} == {"reflect"}
    image = to_pil(synthetic_scene(np.random.default_rng(5), 24)[1])
    enhanced = cliplit.enhance(model, image)
    assert enhanced.size == image.size


@pytest.mark.slow
def test_resume_reaches_the_same_parameters(full_run, tiny_clip, tiny_resnet, data, tmp_path):
    guidance, full_out, _ = full_run
    out = tmp_path / "resumed"
    common = _common_args(data, tiny_clip, tiny_resnet, guidance) + ["--output_dir", str(out)]
    _launch(common + ["--max_train_steps", str(RESUME_FROM_STEP)])  # an interrupted run: stops at checkpoint-12
    assert (out / f"checkpoint-{RESUME_FROM_STEP}").is_dir()
    result = _launch(common + ["--max_train_steps", str(E2E_MAX_STEPS), "--resume_from_checkpoint", "latest"])
    assert f"checkpoint-{RESUME_FROM_STEP}" in result.stderr + result.stdout
    if guidance == "rave":
        assert "RAVE residual computed" not in result.stderr + result.stdout  # restored, not recomputed
    full_model, resumed_model = load_file(str(full_out / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert full_model.keys() == resumed_model.keys()
    for key in full_model:
        torch.testing.assert_close(resumed_model[key], full_model[key], rtol=1e-5, atol=1e-6, msg=key)
    learned, resumed = load_file(str(full_out / GUIDANCE_FILES[guidance])), load_file(str(out / GUIDANCE_FILES[guidance]))
    for key in learned:
        torch.testing.assert_close(resumed[key], learned[key], rtol=1e-5, atol=1e-6)
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
    "--phase_extension_threshold", "inf",
]
# RAVE has no guidance initialization: its run is the same 20 enhancement steps as the others'
RAVE_BEHAVIOUR_ARGS = {"rave": ["--max_train_steps", "20"]}
HELD_OUT_SCENES = 16


@pytest.mark.slow
@pytest.mark.parametrize("guidance", list(GUIDANCE_STAGES))
def test_training_separates_the_guidance_pair_and_brightens_dark_regions(tmp_path, tiny_clip, tiny_resnet, guidance):
    """Guidance initialization (prompts, latent) then one enhancement phase on synthetic backlit scenes,
    judged on held-out scenes; RAVE: its residual, then the enhancement phase."""
    from cliplit import CLIPLITModel
    from cliplit.training.clip_guidance import CLIPGuidance
    from cliplit.training.latent import LatentPair
    from cliplit.training.losses import positive_scores
    from cliplit.training.prompts import PromptPair

    backlit_dir, welllit_dir = write_synthetic_dataset(tmp_path / "data", count=12, size=48, unreadable=False)
    out = tmp_path / "out"
    _launch(["--backlit_dir", str(backlit_dir), "--welllit_dir", str(welllit_dir), "--clip_model", str(tiny_clip),
             "--identity_model", str(tiny_resnet), "--guidance", guidance, "--output_dir", str(out), *BEHAVIOUR_ARGS,
             *RAVE_BEHAVIOUR_ARGS.get(guidance, [])], processes=1)

    rng = np.random.default_rng(123)
    scenes = [synthetic_scene(rng, RESOLUTION) for _ in range(HELD_OUT_SCENES)]
    welllit = torch.tensor(np.stack([s[0] for s in scenes])).permute(0, 3, 1, 2).float()
    backlit = torch.tensor(np.stack([s[1] for s in scenes])).permute(0, 3, 1, 2).float()
    subject = torch.tensor(np.stack([s[2] for s in scenes]))[:, None].expand_as(backlit)

    clip = CLIPGuidance.from_pretrained(tiny_clip)
    if guidance != "rave":
        pair = PromptPair.load(out) if guidance == "prompts" else LatentPair.load(out)
        with torch.no_grad():
            welllit_scores = positive_scores(pair(clip.image_features(welllit)[0], clip))
            backlit_scores = positive_scores(pair(clip.image_features(backlit)[0], clip))
        if guidance == "prompts":  # the untrained (identical) prompts cannot rank anything
            with torch.no_grad():
                initial = PromptPair.from_clip(clip, __import__("transformers").AutoTokenizer.from_pretrained(tiny_clip), PROMPT_LENGTH)
                initial_gap = (positive_scores(initial(clip.image_features(welllit)[0], clip)).mean()
                               - positive_scores(initial(clip.image_features(backlit)[0], clip)).mean()).abs()
            assert initial_gap.item() < 1e-6
        # the learned pair ranks well-lit above backlit
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


def _run_script(args: list[str], prelude: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    code = f"import runpy, sys\n{prelude}\nsys.argv = ['train.py'] + {args!r}\nrunpy.run_path({str(TRAIN_SCRIPT)!r}, run_name='__main__')"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=LAUNCH_TIMEOUT_S,
                          env={**os.environ, "ACCELERATE_USE_CPU": "true", **(env or {})})


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


@pytest.mark.slow
def test_without_the_training_extra_the_error_names_the_install_command(tmp_path):
    line = one_line_error(_run_script(["--backlit_dir", str(tmp_path), "--welllit_dir", str(tmp_path), "--output_dir",
                                       str(tmp_path / "out")], prelude="sys.modules['open_clip'] = None"))
    assert "open_clip" in line and 'pip install -e ".[train]"' in line


@pytest.mark.slow
def test_models_that_cannot_be_loaded_offline_name_the_flag_that_takes_a_folder(tmp_path, data, tiny_clip):
    offline = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "home")}
    common = ["--backlit_dir", str(data["backlit"]), "--welllit_dir", str(data["welllit"]), "--output_dir", str(tmp_path / "out"),
              "--report_to", "none", "--dataloader_num_workers", "0"]
    line = one_line_error(_run_script(common + ["--clip_model", "nobody/no-clip", "--identity_model", "vit"], env=offline))
    assert "--clip_model FOLDER" in line
    line = one_line_error(_run_script(common + ["--clip_model", str(tiny_clip)], env=offline))  # default identity model
    assert "--identity_model FOLDER" in line and "timm/resnet101_clip.openai" in line


@pytest.mark.slow
def test_push_to_hub_creates_the_repository_before_training(tmp_path):
    offline = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "home")}
    result = _run_script(["--backlit_dir", str(tmp_path / "none"), "--welllit_dir", str(tmp_path / "none"), "--output_dir",
                          str(tmp_path / "out"), "--push_to_hub", "--hub_model_id", "someone/model", "--report_to", "none"],
                         env=offline)
    line = one_line_error(result)  # fails on the repository, before looking at the (missing) data
    assert "--hub_model_id someone/model: cannot create the repository" in line


@pytest.mark.slow
def test_rave_shifted_variant_moves_the_residual_away_from_the_token_directions(tmp_path, data, tiny_clip, tiny_resnet):
    from cliplit.training.rave import load_residual

    residuals = {}
    for shift in (0, 3):
        out = tmp_path / f"shift{shift}"
        _launch(_common_args(data, tiny_clip, tiny_resnet, "rave") + ["--output_dir", str(out), "--max_train_steps", "1",
                                                                       "--rave_shift_tokens", str(shift)], processes=1)
        residuals[shift] = load_residual(out)
    (plain, _), (shifted, threshold) = residuals[0], residuals[3]
    assert abs(shifted.norm().item() - 1) < 1e-5 and -1 < threshold < 1
    assert (plain - shifted).abs().max() > 1e-4  # the shift changed the direction


@pytest.mark.slow
def test_an_enhancement_phase_above_the_loss_threshold_is_extended(tmp_path, data, tiny_clip, tiny_resnet):
    out = tmp_path / "out"
    args = _common_args(data, tiny_clip, tiny_resnet) + ["--output_dir", str(out), "--max_train_steps", "11",
                                                          "--phase_extension_threshold", "0", "--phase_extension_steps", "2"]
    log = _launch(args, processes=1).stderr
    # prompt init 3 + reconstruction 2, then the 3-step enhancement phase is extended twice (2 steps each)
    assert log.count("enhancement phase extended by 2 steps") == 2
    assert "stage prompt_refine" not in log


@pytest.mark.slow
def test_paired_validation_logs_psnr_and_ssim(tmp_path, data, tiny_clip, tiny_resnet):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from cliplit.evaluation.metrics import psnr

    inputs, targets = tmp_path / "val_in", tmp_path / "val_target"
    inputs.mkdir()
    targets.mkdir()
    rng = np.random.default_rng(9)
    for index in range(2):
        welllit, backlit, _ = synthetic_scene(rng, 40)
        to_pil(backlit).save(inputs / f"v{index}.png")
        to_pil(welllit).save(targets / f"v{index}.png")
    out = tmp_path / "out"
    result = _launch(_common_args(data, tiny_clip, tiny_resnet) + ["--output_dir", str(out), "--max_train_steps", "5",
                                                                    "--validation_inputs", str(inputs), "--validation_targets",
                                                                    str(targets)], processes=1)
    assert "validation psnr" in result.stderr
    events = EventAccumulator(str(next(out.glob("logs/**/events.out.tfevents.*")).parent))
    events.Reload()
    logged = {tag: events.Scalars(tag) for tag in ("validation/psnr", "validation/ssim")}
    assert all(logged.values())
    # the same code as `cliplit evaluate`: the logged PSNR is that of the saved model's 8-bit outputs
    import cliplit

    model = cliplit.load_model(out)
    model.set_padding("reflect", "zeros")  # the value logged during training came from the training network
    scores = [psnr(np.asarray(cliplit.enhance(model, Image.open(inputs / f"v{i}.png"))), np.asarray(Image.open(targets / f"v{i}.png")))
              for i in range(2)]
    assert logged["validation/psnr"][-1].value == pytest.approx(sum(scores) / 2, abs=1e-3)
