"""bench/benchmark.py runs every mode it is given and compares each with the baseline measured in the same run."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import ENHANCEMENT_CHECKPOINT, REPO_ROOT
from helpers import load_script, run_main, run_script_process
from PIL import Image

pytestmark = pytest.mark.reference

BENCHMARK = REPO_ROOT / "bench" / "benchmark.py"
ROW = re.compile(r"^(\S+)\s+([\d.]+) MP/s .* max diff (\d+) levels, min PSNR (\S+) dB")


@pytest.fixture
def photos(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, (height, width) in enumerate([(40, 56), (33, 47)]):
        Image.fromarray((rng.random((height, width, 3)) * 255).astype(np.uint8)).save(folder / f"img{index}.png")
    return folder


def printed_rows(stdout: str) -> dict:
    return {match[1]: match for match in map(ROW.match, stdout.splitlines()) if match}


def assert_exact_and_fast_against_the_baseline(rows: dict) -> None:
    assert all(float(row[2]) > 0 for row in rows.values())
    assert int(rows["baseline"][3]) == 0 and int(rows["exact"][3]) <= 1  # exact mode: the baseline's pixels
    assert float(rows["fast@2"][4]) < float(rows["exact"][4])  # fast mode is an approximation


def test_benchmark_rows_with_each_mode_run_in_this_process(photos, monkeypatch):
    """The benchmark's own code (each mode's worker, the fidelity against the baseline, the rows), with the worker
    that it starts as a process per mode called in this process instead."""
    benchmark = load_script(BENCHMARK, "cliplit_benchmark_bench")

    def worker_in_this_process(args, mode: str, output_dir: str, timeout: float | None = None):
        result = run_main(benchmark.main, "--worker", mode, "--output-dir", output_dir, "--model", args.model,
                          "--images", args.images, "--tile-size", args.tile_size, "--large", args.large, "--device", args.device)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])

    monkeypatch.setattr(benchmark, "_run_worker", worker_in_this_process)
    result = run_main(benchmark.main, "--model", ENHANCEMENT_CHECKPOINT, "--images", photos, "--modes", "exact", "fast@2", "baseline")
    assert result.returncode == 0, result.stderr
    rows = printed_rows(result.stdout)
    assert set(rows) == {"baseline", "exact", "fast@2"}, result.stdout
    assert_exact_and_fast_against_the_baseline(rows)


@pytest.mark.slow
def test_benchmark_prints_a_row_per_mode_with_its_fidelity_against_the_baseline(photos):
    pytest.importorskip("onnxruntime", reason="onnxruntime is in the export extra")
    result = run_script_process(BENCHMARK, "--model", ENHANCEMENT_CHECKPOINT, "--images", photos,
                                "--modes", "exact", "fast@2", "baseline", "onnxruntime", "cli-batch")
    assert result.returncode == 0, result.stderr
    rows = printed_rows(result.stdout)
    assert set(rows) == {"baseline", "exact", "fast@2", "onnxruntime", "cli-batch"}
    assert_exact_and_fast_against_the_baseline(rows)
    assert int(rows["onnxruntime"][3]) <= 1 and int(rows["cli-batch"][3]) <= 1  # the exported file, the whole command
    assert float(rows["cli-batch"][2]) < float(rows["exact"][2])  # the user's time includes start-up
