"""The GPU check's rehearsal on the CPU (`python bench/gpu_check.py --device cpu --quick`, tiny sizes): every
section runs, and gpu_check.json holds the figures the sections measured, consistent with each other."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys

import pytest
import torch
from conftest import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.reference]

GPU_CHECK = REPO_ROOT / "bench" / "gpu_check.py"
QUICK_MODES = {"baseline", "exact", "fp16", "bf16", "fast", "large"}
TWELVE_MP_STEM = "photo_12mp"
REHEARSAL_TWELVE = 96 * 128 / 1e6  # --twelve on the CPU (96x128)
REHEARSAL_LARGE = 120 * 160 / 1e6  # --large on the CPU (120x160)
GUIDANCES = {"prompts", "latent", "rave"}
REHEARSAL_TRAIN_STEPS = 8  # the CPU rehearsal's (20 on CUDA)


def throughput(items: list) -> float:
    return sum(item["megapixels"] for item in items) / sum(item["seconds"] for item in items)


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    result = subprocess.run([sys.executable, str(GPU_CHECK), "--device", "cpu", "--quick", "--out", str(out)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    return json.loads((out / "gpu_check.json").read_text()), result.stdout, out


def test_every_section_runs_and_the_machine_is_described(rehearsal):
    results, stdout, out = rehearsal
    expected = {"machine", "tests", "benchmark", "video", "training", "profile", "app"}
    assert set(results["sections"]) == expected
    optional = {"video": "av", "app": "gradio"}
    for name, record in results["sections"].items():
        installed = name not in optional or importlib.util.find_spec(optional[name]) is not None
        assert record["status"] == ("ok" if installed else "skipped"), (name, record)
    assert results["device"] == "cpu" and results["quick"] is True
    assert results["machine"]["torch"] == torch.__version__ and results["machine"]["cpu"]
    assert (out / "pytest.xml").is_file()
    assert "cliplit GPU check" in stdout and "goal: 24 MP in under 1 s" in stdout


def test_the_tests_ran_through_pytest_and_passed(rehearsal):
    tests = rehearsal[0]["tests"]
    assert tests["exit_status"] == 0 and tests["failed"] == 0 and tests["passed"] > 0
    assert tests["passed"] + tests["skipped"] == tests["tests"]


def test_the_benchmark_measured_every_quick_mode_on_the_photos_the_12_mp_and_the_large_image(rehearsal):
    results, stdout, _ = rehearsal
    records = results["benchmark"]["records"]
    assert set(records) == QUICK_MODES and not results["benchmark"]["failures"]
    for mode, record in records.items():
        assert record["peak_bytes"] > 0 and all(item["seconds"] > 0 for item in record["images"]), mode
        stems = [item["image"] for item in record["images"]]
        if mode == "large":
            assert len(stems) == 1 and record["images"][0]["megapixels"] == pytest.approx(REHEARSAL_LARGE)
        else:
            assert len(stems) == 4 and stems[-1] == TWELVE_MP_STEM  # the three reference photos, then the 12 MP image
            assert record["images"][-1]["megapixels"] == pytest.approx(REHEARSAL_TWELVE)
        assert f"\nbenchmark  {mode} " in stdout  # one table row per mode
    assert max(item["max_level_diff"] for item in records["exact"]["fidelity"]) <= 1  # exact: the eager pixels
    for half in ("fp16", "bf16"):
        assert 0 < min(item["psnr_db"] for item in records[half]["fidelity"]) < math.inf  # against fp32: close, not equal
    assert min(item["psnr_db"] for item in records["fast"]["fidelity"]) < min(
        item["psnr_db"] for item in records["exact"]["fidelity"])


def test_the_goals_are_read_from_the_measured_figures_and_not_judged_on_a_cpu(rehearsal):
    results = rehearsal[0]
    records = results["benchmark"]["records"]
    goals = {goal["goal"]: goal for goal in results["goals"]}
    parity = goals.pop("exact fp32 within 1 level of the authors' outputs")
    assert parity["verdict"] == "not measured"  # the rehearsal's photos are resized: no authors' output at their size
    assert {goal["verdict"] for goal in goals.values()} == {"rehearsal (cpu): not judged"}
    twelve = [item for item in records["exact"]["images"] if item["image"] == TWELVE_MP_STEM]
    assert goals["exact fp32 >= 100 MP/s on a 12 MP photo"]["measured"] == pytest.approx(throughput(twelve), rel=1e-3)
    assert goals["24 MP in under 1 s"]["measured"] == pytest.approx(records["large"]["images"][0]["seconds"], rel=1e-3)
    half = max(item["max_level_diff"] for mode in ("fp16", "bf16") for item in records[mode]["fidelity"])
    assert goals["fp16 and bf16 within 2 levels of fp32"]["measured"] == half


def test_video_rows_give_network_pipeline_and_command_fps(rehearsal):
    results = rehearsal[0]
    if results["sections"]["video"]["status"] == "skipped":
        pytest.skip(results["sections"]["video"]["reason"])
    rows = {(row["mode"], row["batch"]): row for row in results["video"]["rows"]}
    assert set(rows) == {("fast", 1), ("exact", 4)}
    for row in rows.values():
        assert row["network_fps"] > 0 and row["pipeline_fps"] > 0 and row["command_fps"] > 0
        assert row["size"] == "64x48" and row["frames"] == 4


def test_training_ran_each_guidance_method_in_one_process(rehearsal):
    training = rehearsal[0]["training"]
    runs = {run["guidance"]: run for run in training["runs"]}
    assert set(runs) == GUIDANCES
    assert all(run["status"] == "ok" and run["model_written"] and run["steps"] == REHEARSAL_TRAIN_STEPS and run["device"] == "cpu"
               for run in runs.values())


def test_the_profile_names_the_operators_that_take_the_time(rehearsal):
    (case,) = rehearsal[0]["profile"]
    assert case["case"].startswith("exact fp32") and case["wall_ms"] > 0 and case["device_ms"] > 0
    assert case["top"] and case["top"][0]["self_device_ms"] >= case["top"][-1]["self_device_ms"]
