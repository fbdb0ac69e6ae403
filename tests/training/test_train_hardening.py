"""`train/train.py` on careless input: numbers checked at parse time, an output folder that is the data
refused before anything is written, a damaged checkpoint or a missing file in one line, and offline (or
an unreachable Hub) found out at once instead of after the Hub client's retries."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT
from helpers import load_script, run_main, write_synthetic_dataset, write_tiny_resnet_clip

TRAIN_SCRIPT = REPO_ROOT / "train" / "train.py"
TIMEOUT_S = 600


def train(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, str(TRAIN_SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=TIMEOUT_S, env=environment, cwd=REPO_ROOT)


def one_error(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    backlit, welllit = write_synthetic_dataset(tmp_path_factory.mktemp("data"), count=3, size=32, unreadable=False)
    return {"backlit": backlit, "welllit": welllit}


def data_args(data: dict) -> list[str]:
    return ["--backlit_dir", data["backlit"], "--welllit_dir", data["welllit"], "--report_to", "none",
            "--dataloader_num_workers", "0"]


def parse(argv: list[str]):
    return load_script(TRAIN_SCRIPT, "cliplit_train_script").parse_args(argv)


def train_in_process(*args) -> subprocess.CompletedProcess:
    """The script's `main` in this process, inside the error boundary its `__main__` runs it in."""
    from cliplit.safety.boundary import run_entry_point

    script = load_script(TRAIN_SCRIPT, "cliplit_train_script")
    return run_main(lambda argv: run_entry_point(lambda: script.main(argv), failure_status=script.TRAIN_EXIT_FAILURE), *args)


@pytest.mark.parametrize(("option", "value"), [("--learning_rate", "-1"), ("--learning_rate", "nan"), ("--max_train_steps", "-5"),
                                               ("--max_train_steps", "0"), ("--prompt_learning_rate", "inf"),
                                               ("--adam_beta1", "1"), ("--identity_loss_weight", "-2")])
def test_numbers_that_cannot_train_are_refused_at_parse_time(tmp_path, capsys, option, value):
    with pytest.raises(SystemExit) as exit_status:
        parse(["--backlit_dir", "b", "--welllit_dir", "w", "--output_dir", str(tmp_path / "out"), option, value])
    assert exit_status.value.code == 2 and option in capsys.readouterr().err


@pytest.mark.parametrize("run", [train_in_process, pytest.param(train, marks=pytest.mark.slow)], ids=["in-process", "process"])
def test_an_output_folder_that_is_the_data_is_refused_before_anything_is_written(data, tmp_path, run):
    before = sorted(p.name for p in data["backlit"].iterdir())
    line = one_error(run(*data_args(data), "--output_dir", data["backlit"]))
    assert "--output_dir" in line and "which is read" in line
    assert sorted(p.name for p in data["backlit"].iterdir()) == before
    line = one_error(run(*data_args(data), "--output_dir", tmp_path / "out", "--init_prompts", tmp_path / "missing.pth"))
    assert "missing.pth" in line and "--init_prompts" in line and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_offline_or_an_unreachable_hub_fails_at_once_naming_the_flag(data, tmp_path):
    cache = {"HF_HOME": str(tmp_path / "home"), "HF_HUB_CACHE": str(tmp_path / "hub")}
    line = one_error(train(*data_args(data), "--output_dir", tmp_path / "out", env={**cache, "HF_HUB_OFFLINE": "1"}))
    assert "--clip_model openai/clip-vit-base-patch32: not in the Hugging Face cache and HF_HUB_OFFLINE is set" in line
    # No HF_HUB_OFFLINE, but nothing answers at the Hub's address: one connection attempt, not the client's retries
    unreachable = {**cache, "HF_HUB_OFFLINE": "", "HF_ENDPOINT": "http://127.0.0.1:9"}
    line = one_error(train(*data_args(data), "--output_dir", tmp_path / "out", env=unreachable))
    assert "--clip_model" in line and "the Hub cannot be reached" in line and "--clip_model FOLDER" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_damaged_checkpoint_is_one_line(data, tmp_path, tiny_clip_dir):
    pytest.importorskip("open_clip", reason="open_clip_torch is in the training extra")
    identity = write_tiny_resnet_clip(tmp_path / "identity")
    out = tmp_path / "out"
    checkpoint = out / "checkpoint-4"
    checkpoint.mkdir(parents=True)
    for name in ("cliplit_training_state.json", "cliplit_training_state.safetensors", "model.safetensors"):
        (checkpoint / name).write_bytes(b"\x00garbage")
    line = one_error(train(*data_args(data), "--output_dir", out, "--clip_model", tiny_clip_dir, "--identity_model", identity,
                           "--prompt_length", "4", "--resolution", "32", "--prompt_resolution", "32", "--train_batch_size", "2",
                           "--prompt_batch_size", "2", "--resume_from_checkpoint", "latest", env={"HF_HUB_OFFLINE": "1"}))
    assert "checkpoint-4: damaged training checkpoint" in line and "--resume_from_checkpoint" in line
