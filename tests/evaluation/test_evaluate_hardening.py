"""`cliplit evaluate` correct on careless input: keys that cannot collide, ambiguous targets named, strict
JSON reports, images too small for a metric skipped with a note, the output place checked before any work."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_cli, run_cli_process
from PIL import Image

from cliplit import CLIPLITConfig, CLIPLITModel


def image(path: Path, size=(32, 24), seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def strict_json(path: Path):
    def refuse(constant):
        raise AssertionError(f"{path}: {constant} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_same_named_inputs_in_two_folders_keep_two_rows_and_reports_are_strict_json(tmp_path):
    for folder, seed in (("d1", 1), ("d2", 2)):
        image(tmp_path / folder / "a.png", seed=seed)
    image(tmp_path / "targets" / "a.png", seed=1)
    image(tmp_path / "same" / "a.png", seed=1)  # identical to d1/a.png's target: PSNR inf for that row
    out = tmp_path / "report"
    result = run_cli("evaluate", tmp_path / "d1", tmp_path / "d2", "--targets", tmp_path / "targets",
                 "--predictions", tmp_path / "same", "--metrics", "psnr", "-o", out, "-q")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    rows = (out / "per_image.csv").read_text().splitlines()[1:]
    assert sorted(row.split(",")[1] for row in rows) == [str(tmp_path / "d1" / "a.png"), str(tmp_path / "d2" / "a.png")]
    summary = strict_json(out / "summary.json")[str(tmp_path / "same")]
    assert summary["images"] == 2 and summary["psnr"] is None and summary["psnr_infinite_left_out"] == 2


def test_an_ambiguous_target_is_named(tmp_path):
    image(tmp_path / "inputs" / "a.png")
    image(tmp_path / "targets" / "a.png")
    image(tmp_path / "targets" / "a.jpg")
    image(tmp_path / "predictions" / "a.png")
    result = run_cli("evaluate", tmp_path / "inputs", "--targets", tmp_path / "targets", "--predictions",
                 tmp_path / "predictions", "--metrics", "psnr", "-q")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 1 and len(errors) == 1 and "Traceback" not in result.stderr
    assert "ambiguous target" in errors[0] and "a.png" in errors[0] and "a.jpg" in errors[0]


def test_images_too_small_for_ssim_are_skipped_with_a_note_and_a_one_pixel_input_is_one_line(tmp_path):
    image(tmp_path / "inputs" / "tiny.png", size=(8, 8))
    image(tmp_path / "targets" / "tiny.png", size=(8, 8), seed=1)
    image(tmp_path / "predictions" / "tiny.png", size=(8, 8), seed=2)
    out = tmp_path / "report"
    result = run_cli("evaluate", tmp_path / "inputs", "--targets", tmp_path / "targets", "--predictions",
                 tmp_path / "predictions", "--metrics", "psnr", "ssim", "-o", out, "-q")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "note: " in result.stderr and "ssim skipped" in result.stderr
    summary = strict_json(out / "summary.json")[str(tmp_path / "predictions")]
    assert summary["images"] == 1 and summary["psnr"] > 0 and "ssim" not in summary
    model = tmp_path / "model"
    torch.manual_seed(0)
    CLIPLITModel(CLIPLITConfig()).save_pretrained(model)
    image(tmp_path / "dot" / "d.png", size=(1, 1))
    image(tmp_path / "dot-targets" / "d.png", size=(1, 1))
    result = run_cli("evaluate", tmp_path / "dot", "--targets", tmp_path / "dot-targets", "--model", model, "--metrics", "psnr", "-q")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 1 and "Traceback" not in result.stderr and len(errors) == 1 and "d.png" in errors[0]


@pytest.mark.parametrize("place", ["a file", "under a file", "an input folder"])
def test_the_output_place_is_checked_before_any_work(tmp_path, place):
    image(tmp_path / "inputs" / "a.png")
    image(tmp_path / "targets" / "a.png")
    (tmp_path / "file").write_text("mine")
    output = {"a file": tmp_path / "file", "under a file": tmp_path / "file" / "report",
              "an input folder": tmp_path / "targets"}[place]
    result = run_cli("evaluate", tmp_path / "inputs", "--targets", tmp_path / "targets", "--predictions", tmp_path / "targets",
                 "--metrics", "psnr", "-o", output, "-q")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 1 and len(errors) == 1 and "--output" in errors[0] and "Traceback" not in result.stderr
    assert result.stdout == ""  # refused before scoring anything
    assert (tmp_path / "file").read_text() == "mine" and not (tmp_path / "targets" / "summary.json").exists()


@pytest.mark.slow
def test_reports_are_written_when_stdout_is_closed(tmp_path):
    image(tmp_path / "inputs" / "a.png")
    image(tmp_path / "targets" / "a.png")
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = run_cli_process("evaluate", tmp_path / "inputs", "--targets", tmp_path / "targets", "--predictions",
                                 tmp_path / "targets", "--metrics", "psnr", "-o", tmp_path / "report", "-q",
                                 stdout=write_end, stderr=subprocess.PIPE)
    finally:
        os.close(write_end)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert strict_json(tmp_path / "report" / "summary.json")
