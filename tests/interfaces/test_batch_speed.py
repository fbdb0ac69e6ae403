"""Batch throughput: the CLI options of the fast paths, and the file list split under `accelerate launch`."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from conftest import ENHANCEMENT_CHECKPOINT
from helpers import process_shares, python_env, run_cli
from PIL import Image

pytestmark = pytest.mark.reference

ONE_LEVEL = 1


def make_inputs(folder, count: int = 3) -> list[str]:
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = []
    for index in range(count):
        array = (rng.random((24 + 5 * index, 31, 3)) * 255).astype(np.uint8)
        Image.fromarray(array).save(folder / f"img{index}.png")
        names.append(f"img{index}.png")
    return names


def read(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image).astype(np.int16)


def test_cli_tile_size_gives_the_same_pixels_and_fast_mode_runs(tmp_path):
    names = make_inputs(tmp_path / "in")
    whole = run_cli("enhance", tmp_path / "in", "--model", ENHANCEMENT_CHECKPOINT, "-o", tmp_path / "whole", "-q", "--tile-size", "0")
    tiled = run_cli("enhance", tmp_path / "in", "--model", ENHANCEMENT_CHECKPOINT, "-o", tmp_path / "tiled", "-q", "--tile-size", "16")
    fast = run_cli("enhance", tmp_path / "in", "--model", ENHANCEMENT_CHECKPOINT, "-o", tmp_path / "fast", "-q", "--mode", "fast")
    # downscaling by 1 runs the network at full resolution: fast mode's plumbing, exact pixels
    unscaled = run_cli("enhance", tmp_path / "in", "--model", ENHANCEMENT_CHECKPOINT, "-o", tmp_path / "unscaled", "-q",
                   "--mode", "fast", "--fast-downscale", "1")
    for result in (whole, tiled, fast, unscaled):
        assert result.returncode == 0, result.stderr
    for name in names:
        assert np.abs(read(tmp_path / "whole" / name) - read(tmp_path / "tiled" / name)).max() <= ONE_LEVEL
        assert np.abs(read(tmp_path / "whole" / name) - read(tmp_path / "unscaled" / name)).max() <= ONE_LEVEL
        assert read(tmp_path / "fast" / name).shape == read(tmp_path / "whole" / name).shape


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate is not installed")
def test_accelerate_launch_splits_the_files_across_processes(tmp_path):
    names = make_inputs(tmp_path / "in")
    single = run_cli("enhance", tmp_path / "in", "--model", ENHANCEMENT_CHECKPOINT, "-o", tmp_path / "single", "-q")
    assert single.returncode == 0, single.stderr
    # accelerate starts several CPU processes only in its multi-process mode; `--cpu` alone runs one.
    env = python_env(OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="true")
    launched = subprocess.run(
        ["accelerate", "launch", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
         "--dynamo_backend", "no", "--multi_gpu", "-m", "cliplit", "enhance", str(tmp_path / "in"),
         "--model", str(ENHANCEMENT_CHECKPOINT), "-o", str(tmp_path / "split"), "-q"],
        capture_output=True, text=True, env=env,
    )
    assert launched.returncode == 0, launched.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "split").glob("*.png")) == sorted(names)
    shares = process_shares(launched.stderr)
    assert sorted(shares) == [0, 1], launched.stderr[-2000:]
    assert sum(shares.values()) == len(names)  # each file once
    for name in names:
        assert np.abs(read(tmp_path / "split" / name) - read(tmp_path / "single" / name)).max() <= ONE_LEVEL
