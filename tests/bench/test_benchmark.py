"""bench/benchmark.py runs every mode it is given and compares each with the baseline measured in the same run."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import ENHANCEMENT_CHECKPOINT, REPO_ROOT
from PIL import Image

pytestmark = [pytest.mark.reference, pytest.mark.slow]  # the benchmark runs as a process

BENCHMARK = REPO_ROOT / "bench" / "benchmark.py"
ROW = re.compile(r"^(\S+)\s+([\d.]+) MP/s .* max diff (\d+) levels, min PSNR (\S+) dB")
pytest.importorskip("onnxruntime", reason="onnxruntime is in the export extra")


def test_benchmark_prints_a_row_per_mode_with_its_fidelity_against_the_baseline(tmp_path):
    rng = np.random.default_rng(0)
    for index, (height, width) in enumerate([(40, 56), (33, 47)]):
        Image.fromarray((rng.random((height, width, 3)) * 255).astype(np.uint8)).save(tmp_path / f"img{index}.png")
    result = subprocess.run(
        [sys.executable, str(BENCHMARK), "--model", str(ENHANCEMENT_CHECKPOINT), "--images", str(tmp_path),
         "--modes", "exact", "fast@2", "baseline", "onnxruntime", "cli-batch"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = {match[1]: match for match in map(ROW.match, result.stdout.splitlines()) if match}
    assert set(rows) == {"baseline", "exact", "fast@2", "onnxruntime", "cli-batch"}
    assert all(float(row[2]) > 0 for row in rows.values())
    assert int(rows["baseline"][3]) == 0 and int(rows["exact"][3]) <= 1  # exact mode: the baseline's pixels
    assert int(rows["onnxruntime"][3]) <= 1 and int(rows["cli-batch"][3]) <= 1  # the exported file, the whole command
    assert float(rows["cli-batch"][2]) < float(rows["exact"][2])  # the user's time includes start-up
    assert float(rows["fast@2"][4]) < float(rows["exact"][4])  # fast mode is an approximation
