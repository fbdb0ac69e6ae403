"""`cliplit evaluate` says how many images each metric scored (issue 28): an image too small for SSIM's window
is scored on the other metrics, and the table and `summary.json` give the count per metric. In this process."""

from __future__ import annotations

import json

import numpy as np
from helpers import run_cli
from PIL import Image


def image(path, size, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def test_each_metric_has_its_own_image_count_in_the_table_and_the_summary(tmp_path):
    for name, size in (("tiny.png", (8, 8)), ("photo.png", (32, 24)), ("other.png", (40, 30))):
        image(tmp_path / "inputs" / name, size, seed=1)
        image(tmp_path / "targets" / name, size, seed=2)
        image(tmp_path / "predictions" / name, size, seed=3)
    result = run_cli("evaluate", tmp_path / "inputs", "--targets", tmp_path / "targets", "--predictions",
                     tmp_path / "predictions", "--metrics", "psnr", "ssim", "-o", tmp_path / "report", "-q")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())[str(tmp_path / "predictions")]
    assert (summary["images"], summary["psnr_images"], summary["ssim_images"]) == (3, 3, 2)
    header, row = result.stdout.splitlines()[:2]
    assert header.split()[-1] == "images" and row.endswith("3 (ssim 2)"), result.stdout
    result = run_cli("evaluate", tmp_path / "inputs", "--targets", tmp_path / "targets", "--predictions",
                     tmp_path / "predictions", "--metrics", "psnr", "-q")
    assert result.stdout.splitlines()[1].split()[-1] == "3"  # one count where every metric scored every image
