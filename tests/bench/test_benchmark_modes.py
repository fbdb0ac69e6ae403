"""bench/benchmark.py's modes for the GPU check: exact without TF32, the eager network in each layout and
precision, 24 MP in tiles, the comparison with the authors' outputs (--golden) and --time-limit."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ENHANCEMENT_CHECKPOINT, REPO_ROOT
from PIL import Image

pytestmark = [pytest.mark.slow, pytest.mark.reference]

BENCHMARK = REPO_ROOT / "bench" / "benchmark.py"
SIZES = [(40, 56), (33, 47)]


def run_benchmark(*options: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARK), "--model", str(ENHANCEMENT_CHECKPOINT), *options],
                          capture_output=True, text=True, check=False, timeout=1800)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple:
    """Two small photos, and a folder of their outputs from the published network in fp32 (the stand-in for
    the authors' outputs: `--golden`)."""
    from cliplit.model.conversion import network_from_author_checkpoint
    from cliplit.model.network import apply_illumination

    folder, golden = tmp_path_factory.mktemp("photos"), tmp_path_factory.mktemp("golden")
    model = network_from_author_checkpoint(ENHANCEMENT_CHECKPOINT)
    rng = np.random.default_rng(0)
    for index, (height, width) in enumerate(SIZES):
        pixels = (rng.random((height, width, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"img{index}.png")
        tensor = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            enhanced = apply_illumination(tensor, model.estimate_illumination(tensor))
        levels = torch.floor(enhanced[0].permute(1, 2, 0) * 255 + 0.5).to(torch.uint8).numpy()
        Image.fromarray(levels).save(golden / f"img{index}.png")
    return folder, golden


def test_layout_precision_and_tiled_large_modes_with_the_authors_outputs(photos, tmp_path):
    folder, golden = photos
    report = tmp_path / "report.json"
    modes = ["baseline", "eager-nhwc", "eager-nhwc-bf16", "large-tiled"]
    result = run_benchmark("--images", str(folder), "--modes", *modes, "--large", "70x90", "--tile-size", "32",
                           "--golden", str(golden), "--json", str(report))
    assert result.returncode == 0, result.stderr
    records = json.loads(report.read_text())["records"]
    assert set(records) == set(modes)
    for mode in ("baseline", "eager-nhwc"):  # fp32: the published pixels
        assert max(item["max_level_diff"] for item in records[mode]["golden"]) <= 1, mode
        assert max(item["max_level_diff"] for item in records[mode]["fidelity"]) <= 1, mode
    bf16 = records["eager-nhwc-bf16"]
    assert 0 < max(item["max_level_diff"] for item in bf16["fidelity"])  # bf16 rounds: not the fp32 pixels
    assert min(item["psnr_db"] for item in bf16["fidelity"]) > 30
    (large,) = records["large-tiled"]["images"]
    assert large["image"] == "large_70x90" and records["large-tiled"]["golden"] == []  # no authors' output at that size
    assert "vs golden max" in result.stdout


def test_a_mode_past_the_time_limit_is_reported_and_not_run(photos, tmp_path):
    report = tmp_path / "report.json"
    result = run_benchmark("--images", str(photos[0]), "--modes", "exact", "fast", "--time-limit", "0", "--json", str(report))
    assert result.returncode == 0, result.stderr
    data = json.loads(report.read_text())
    assert data["records"] == {}
    assert data["failures"] == {"exact": "not run: --time-limit reached", "fast": "not run: --time-limit reached"}


def test_an_unknown_mode_fails_on_one_line(photos, tmp_path):
    result = run_benchmark("--images", str(photos[0]), "--modes", "eager-nhwx", "--json", str(tmp_path / "r.json"))
    assert "eager-nhwx: failed: error: eager-nhwx: the layout must be one of nchw, nhwc" in result.stdout
