"""bench/sixteen_bit.py measures the 16-bit RAW path against a camera JPEG on a synthetic backlit scene."""

from __future__ import annotations

import re
import subprocess

import pytest
from conftest import ENHANCEMENT_CHECKPOINT, REPO_ROOT
from helpers import load_script, run_main, run_script_process

pytestmark = pytest.mark.reference

SCRIPT = REPO_ROOT / "bench" / "sixteen_bit.py"
ROW = re.compile(r"^(RAW|JPEG).*?(\d+)-b\s+(\d+)-b\s+([\d.]+) dB\s+(\d+)$")


def in_process(*argv) -> subprocess.CompletedProcess:
    return run_main(load_script(SCRIPT, "cliplit_sixteen_bit_bench").main, *argv)


def as_process(*argv) -> subprocess.CompletedProcess:
    return run_script_process(SCRIPT, *argv)


@pytest.mark.parametrize("run", [in_process, pytest.param(as_process, marks=pytest.mark.slow)], ids=["in-process", "process"])
def test_sixteen_bit_benchmark_prints_both_paths_and_the_raw_path_keeps_the_shadows(run):
    result = run("--model", ENHANCEMENT_CHECKPOINT, "--size", "128x192")
    assert result.returncode == 0, result.stderr
    rows = {match[1]: match for match in map(ROW.match, result.stdout.splitlines()) if match}
    assert set(rows) == {"RAW", "JPEG"}, result.stdout
    assert (rows["RAW"][2], rows["RAW"][3]) == ("16", "16") and (rows["JPEG"][2], rows["JPEG"][3]) == ("8", "8")
    assert float(rows["RAW"][4]) > float(rows["JPEG"][4])  # more shadow levels survive the enhancement
    assert int(rows["RAW"][5]) > int(rows["JPEG"][5])
    assert "16-bit benefit:" in result.stdout
