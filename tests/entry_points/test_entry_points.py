"""Every entry point started as a process, the way a user starts it: the installed `cliplit` command
(each subcommand) and `python -m cliplit`, `accelerate launch train/train.py` with its default models
resolved offline from a Hugging Face cache, the bench scripts on tiny inputs, and
`examples/make_examples.py`. (Each command's behaviour is tested in depth elsewhere; here a test fails
when an entry point cannot start or finish as documented.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ENHANCEMENT_CHECKPOINT, REPO_ROOT, golden_for, smallest_reference_image
from helpers import (
    PROCESS_TIMEOUT_S,
    python_env,
    run_cli_process,
    write_hub_cache_entry,
    write_synthetic_dataset,
    write_tiny_clip,
    write_tiny_resnet_clip,
)
from PIL import Image

pytestmark = pytest.mark.slow


def run(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=python_env(**env), capture_output=True, text=True,
                            timeout=PROCESS_TIMEOUT_S)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def level_difference(first: Path, second: Path) -> int:
    with Image.open(first) as a, Image.open(second) as b:
        return int(np.abs(np.asarray(a.convert("RGB"), np.int16) - np.asarray(b.convert("RGB"), np.int16)).max())


def cliplit(*argv, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """The installed `cliplit` command run in `cwd` with `env` added (no traceback allowed)."""
    result = run_cli_process(*argv, installed=True, cwd=cwd, env=env)
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.mark.reference
def test_every_cliplit_subcommand_runs_as_an_installed_command(tmp_path, published_cache):
    env = {"CLIPLIT_CACHE": str(published_cache), "HF_HUB_OFFLINE": "1"}
    photo = smallest_reference_image()

    assert cliplit("--version", cwd=tmp_path).stdout.startswith("cliplit ")
    listing = cliplit("models", cwd=tmp_path, **env)
    assert listing.returncode == 0 and "clip-lit (default)" in listing.stdout and "rave-unpaired" in listing.stdout
    added = cliplit("models", "add", "clip-lit", ENHANCEMENT_CHECKPOINT, cwd=tmp_path, CLIPLIT_CACHE=str(tmp_path / "cache"))
    assert added.returncode == 0 and (tmp_path / "cache" / "clip-lit" / "model.safetensors").is_file(), added.stderr

    enhanced = cliplit("enhance", photo, "--output", "out", "--quiet", cwd=tmp_path, **env)  # the default model
    assert enhanced.returncode == 0, enhanced.stderr
    assert level_difference(tmp_path / "out" / f"{photo.stem}.png", golden_for(photo)) <= 1

    converted = cliplit("convert", ENHANCEMENT_CHECKPOINT, "converted", cwd=tmp_path)
    assert converted.returncode == 0 and (tmp_path / "converted" / "model.safetensors").is_file(), converted.stderr

    scores = cliplit("evaluate", photo, "--targets", golden_for(photo).parent, "--model", "converted",
                     "--metrics", "psnr", "ssim", "--output", "report", "--quiet", cwd=tmp_path)
    assert scores.returncode == 0, scores.stderr
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary  # one method scored

    pytest.importorskip("onnxruntime", reason="onnxruntime is in the export extra")
    exported = cliplit("export", "converted", "model.onnx", cwd=tmp_path)
    assert exported.returncode == 0 and (tmp_path / "model.onnx").stat().st_size > 0, exported.stderr


def test_python_dash_m_cliplit_is_the_same_command(tmp_path):
    help_text = run_cli_process("--help", cwd=tmp_path)
    assert help_text.returncode == 0 and "Traceback" not in help_text.stderr
    for command in ("enhance", "evaluate", "models", "export", "convert"):
        assert command in help_text.stdout


TRAIN_SIZES = ["--resolution", "32", "--prompt_resolution", "32", "--prompt_length", "2", "--prompt_init_steps", "2",
               "--reconstruction_steps", "2", "--enhance_steps_per_round", "2", "--prompt_steps_per_round", "2",
               "--max_train_steps", "10", "--train_batch_size", "2", "--prompt_batch_size", "2", "--best_check_steps", "2"]


def test_accelerate_launch_trains_with_the_default_models_from_an_offline_cache(tmp_path):
    """`accelerate launch train/train.py` as the README gives it: no accelerate config, the default
    `--clip_model openai/clip-vit-base-patch32` and `--identity_model timm/resnet101_clip.openai`, found
    offline in a Hugging Face cache where tiny random models stand in for them (laid out as their
    downloads are); only the schedule and sizes are made tiny."""
    pytest.importorskip("open_clip", reason="open_clip_torch is in the training extra")
    accelerate = shutil.which("accelerate")
    if accelerate is None:
        pytest.fail("the accelerate command is not on PATH (the training extra installs it)")
    hf_home = tmp_path / "hf"
    write_hub_cache_entry(hf_home / "hub", "openai/clip-vit-base-patch32", write_tiny_clip(tmp_path / "clip"))
    write_hub_cache_entry(hf_home / "hub", "timm/resnet101_clip.openai", write_tiny_resnet_clip(tmp_path / "resnet"))
    write_synthetic_dataset(tmp_path / "data", count=4, size=40, unreadable=False)
    result = run([accelerate, "launch", str(REPO_ROOT / "train" / "train.py"), "--backlit_dir", "data/backlit",
                  "--welllit_dir", "data/welllit", "--output_dir", "cliplit-run", *TRAIN_SIZES], tmp_path,
                 HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    assert result.returncode == 0, result.stderr[-4000:]
    output = tmp_path / "cliplit-run"
    assert (output / "model.safetensors").is_file() and (output / "prompt_pair.safetensors").is_file()
    from cliplit.model.loading import load_network

    load_network(output)  # a model `--model cliplit-run` takes


@pytest.mark.reference
def test_bench_scripts_run_on_tiny_inputs(tmp_path):
    photo = tmp_path / "small.jpg"
    Image.fromarray((np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)).save(photo)
    startup = run([sys.executable, str(REPO_ROOT / "bench" / "startup.py"), "--model", str(ENHANCEMENT_CHECKPOINT),
                   "--image", str(photo), "--repeat", "1"], tmp_path)
    assert startup.returncode == 0, startup.stderr
    assert "cliplit --help" in startup.stdout and "x import torch" in startup.stdout
    winograd = run([sys.executable, str(REPO_ROOT / "bench" / "winograd.py"), "--size", "24", "--channels", "4",
                    "--repeat", "1"], tmp_path)
    assert winograd.returncode == 0, winograd.stderr
    assert "direct" in winograd.stdout
    # bench/benchmark.py runs as a process in tests/bench/test_benchmark.py


@pytest.mark.reference
def test_make_examples_renders_the_examples_and_the_picture(tmp_path, converted_model_dir):
    pytest.importorskip("skimage", reason="the examples are rendered from scikit-image's photos")
    out = tmp_path / "examples"
    picture = tmp_path / "before_after.jpg"
    result = run([sys.executable, str(REPO_ROOT / "examples" / "make_examples.py"), "--model", str(converted_model_dir),
                  "--output-dir", str(out), "--before-after", str(picture)], tmp_path)
    assert result.returncode == 0, result.stderr
    rendered = sorted(path.name for path in out.glob("*.jpg"))
    assert rendered == sorted(path.name for path in (REPO_ROOT / "examples").glob("*.jpg"))
    with Image.open(picture) as image:
        assert image.width > image.height  # before | after, side by side
