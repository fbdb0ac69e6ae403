"""`cliplit evaluate`: PSNR and SSIM equal to scikit-image's on real photos with real degradations,
identical images, targets matched by stem, several methods side by side, one line per problem."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import golden_for, smallest_reference_image
from helpers import run_cli
from PIL import Image, ImageFilter

from cliplit.evaluation.evaluate import mean_of
from cliplit.evaluation.metrics import psnr, ssim

skimage_metrics = pytest.importorskip("skimage.metrics", reason="scikit-image is in the test extra")
TOLERANCE = 1e-3


def degradations(image: Image.Image) -> dict[str, np.ndarray]:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=25)
    return {
        "blur": np.asarray(image.filter(ImageFilter.GaussianBlur(2))),
        "jpeg": np.asarray(Image.open(buffer).convert("RGB")),
        "noise": np.clip(np.asarray(image).astype(int) + np.random.default_rng(0).integers(-12, 13, np.asarray(image).shape),
                         0, 255).astype(np.uint8),
    }


@pytest.mark.reference
def test_psnr_and_ssim_equal_scikit_image_on_real_photos():
    path = smallest_reference_image()
    with Image.open(path) as photo:
        photo = photo.convert("RGB")
    reference = np.asarray(photo)
    with Image.open(golden_for(path)) as golden:
        cases = {**degradations(photo), "enhancement": np.asarray(golden.convert("RGB"))}
    for name, degraded in cases.items():
        expected_psnr = skimage_metrics.peak_signal_noise_ratio(reference, degraded, data_range=255)
        expected_ssim = skimage_metrics.structural_similarity(reference, degraded, gaussian_weights=True, sigma=1.5,
                                                              use_sample_covariance=False, data_range=255, channel_axis=-1)
        assert abs(psnr(degraded, reference) - expected_psnr) < TOLERANCE, name
        assert abs(ssim(degraded, reference) - expected_ssim) < TOLERANCE, name


def test_identical_images_have_infinite_psnr_left_out_of_the_mean():
    image = np.random.default_rng(1).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    assert psnr(image, image) == math.inf and ssim(image, image) == pytest.approx(1.0)
    assert mean_of([30.0, math.inf, 40.0]) == (35.0, 1)
    assert mean_of([math.inf]) == (None, 1)  # strict JSON: null, and the count says why
    sixteen = np.minimum(image, 254).astype(np.uint16) * 257  # 16-bit data: the data range is 65535
    assert psnr(sixteen, sixteen + 257) == pytest.approx(20 * math.log10(65535 / 257))


def evaluate_offline(*args) -> subprocess.CompletedProcess:
    """`cliplit evaluate ARGS` in this process, offline (HF_HUB_OFFLINE=1: LPIPS's backbone is not fetched)."""
    return run_cli("evaluate", *args, env={"HF_HUB_OFFLINE": "1"})


@pytest.fixture(scope="module")
def scene(tmp_path_factory, converted_model_dir):
    """Two inputs (the smallest reference photo reduced, and a copy), their targets (the golden outputs
    reduced the same way), one input without target, and two 'other methods': the targets themselves
    and a blurred copy, one of whose outputs is missing."""
    root = tmp_path_factory.mktemp("scene")
    for folder in ("inputs", "targets", "perfect", "blurred"):
        (root / folder).mkdir()
    path = smallest_reference_image()
    with Image.open(path) as photo, Image.open(golden_for(path)) as golden:
        photo, golden = photo.convert("RGB").reduce(4), golden.convert("RGB").reduce(4)
    for stem in ("a", "b"):
        photo.save(root / "inputs" / f"{stem}.png")
        golden.save(root / "targets" / f"{stem}.png")
        golden.save(root / "perfect" / f"{stem}.png")
    golden.filter(ImageFilter.GaussianBlur(1)).save(root / "blurred" / "a.png")
    photo.save(root / "inputs" / "orphan.png")
    return root


@pytest.mark.reference
def test_models_and_predictions_side_by_side(scene, converted_model_dir):
    out = scene / "report"
    result = evaluate_offline(scene / "inputs", "--targets", scene / "targets", "--model", converted_model_dir,
                 "--predictions", scene / "perfect", "--predictions", scene / "blurred", "--output", out, "-q")
    assert result.returncode == 1 and "Traceback" not in result.stderr  # the orphan and one missing prediction
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and any("orphan.png: no target" in e for e in errors)
    assert any("no output of" in e and "blurred" in e for e in errors)
    assert "note: lpips: not computed" in result.stderr and "alexnet" in result.stderr  # offline: one line, the rest runs
    summary = json.loads((out / "summary.json").read_text())
    model, perfect, blurred = summary[str(converted_model_dir)], summary[str(scene / "perfect")], summary[str(scene / "blurred")]
    assert model["images"] == 2 and model["left_out"] == ["orphan.png"]
    assert 20 < model["psnr"] < 60 and 0.8 < model["ssim"] < 1  # the network on a reduced photo: close to the reduced golden
    assert perfect["psnr"] is None and perfect["psnr_infinite_left_out"] == 2 and perfect["ssim"] == pytest.approx(1)
    assert blurred["images"] == 1 and sorted(blurred["left_out"]) == ["b.png", "orphan.png"]
    assert blurred["psnr"] < 40 and blurred["ssim"] < perfect["ssim"]  # a blurred copy of the target scores below it
    with open(out / "per_image.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["method", "image", "psnr", "ssim", "lpips"]
    assert len(rows) == 2 + 2 + 1
    table = result.stdout.splitlines()
    assert table[0].split()[:3] == ["method", "psnr", "ssim"] and len(table) >= 4


@pytest.mark.reference
def test_a_model_runs_with_the_engine_settings_of_enhance_and_a_bad_target_is_one_line(scene, converted_model_dir, tmp_path):
    targets = tmp_path / "targets"
    targets.mkdir()
    with Image.open(scene / "targets" / "a.png") as target:
        target.save(targets / "a.png")
        target.resize((target.width // 2, target.height // 2)).save(targets / "b.png")  # another size
    exact = evaluate_offline(scene / "inputs" / "a.png", scene / "inputs" / "b.png", "--targets", targets,
                "--model", converted_model_dir, "--metrics", "psnr", "-o", tmp_path / "exact", "-q")
    fast = evaluate_offline(scene / "inputs" / "a.png", "--targets", targets, "--model", converted_model_dir,
               "--metrics", "psnr", "--mode", "fast", "-o", tmp_path / "fast", "-q")
    assert fast.returncode == 0, fast.stderr
    assert exact.returncode == 1 and "b.png: target is" in exact.stderr
    exact_psnr = json.loads((tmp_path / "exact" / "summary.json").read_text())[str(converted_model_dir)]["psnr"]
    fast_psnr = json.loads((tmp_path / "fast" / "summary.json").read_text())[str(converted_model_dir)]["psnr"]
    assert fast_psnr < exact_psnr  # fast mode's outputs are close to, not equal to, the published ones


@pytest.mark.reference
def test_each_target_is_read_once_and_each_model_built_once(scene, converted_model_dir, monkeypatch, capsys):
    import cliplit.evaluation.evaluate as evaluation
    from cliplit.interfaces.cli import main

    reads, builds = [], []
    original_read = evaluation.read_image
    monkeypatch.setattr(evaluation, "read_image", lambda path, **kw: reads.append(Path(path).parent.name) or original_read(path, **kw))
    import cliplit.model.loading as loading

    real_load = loading.load_network
    monkeypatch.setattr(loading, "load_network", lambda spec=None, **kw: builds.append(spec) or real_load(spec, **kw))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(["evaluate", str(scene / "inputs" / "a.png"), str(scene / "inputs" / "b.png"), "--targets", str(scene / "targets"),
                 "--model", str(converted_model_dir), "--model", str(converted_model_dir), "--metrics", "psnr", "ssim", "-q"])
    assert code == 0
    assert reads.count("targets") == 2 and reads.count("inputs") == 2  # per image: one target read, one input read
    assert builds == [str(converted_model_dir)] * 2  # one build per --model
