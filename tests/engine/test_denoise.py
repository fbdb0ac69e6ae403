"""`denoise`: off gives the published pixels, auto leaves clean photos alone and brings degraded ones closer
to the enhancement of the clean scene, in tiles as in one pass, in fast mode too; the CLI option, and the
quality benchmark run as a process."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ENHANCEMENT_CHECKPOINT, REPO_ROOT, golden_for, smallest_reference_image
from denoise_scenes import quality  # the fixtures clean_scene and engines: tests/conftest.py's plugin
from helpers import run_cli
from PIL import Image

from cliplit.engine import denoise, noise_level
from cliplit.engine.enhancer import Enhancer
from cliplit.engine.settings import check_denoise
from cliplit.errors import SettingsError
from cliplit.imaging.codec import decode_image
from cliplit.imaging.files import read_image
from cliplit.imaging.jpeg import jpeg_compression

# Shadow PSNR that `auto` must gain over `off` on the small case (measured there: docs/denoise.md gives
# the full benchmark): JPEG q75 and ISO 1600 noise.
JPEG_MARGIN_DB = 1.2  # measured +1.6 (4:2:0 chroma upsampled, luma deblocked)
NOISE_MARGIN_DB = 3.0
SEAM_TOLERANCE = 1e-5  # tiled against one pass: float rounding (OpenCV's bilateral range table spans each tile's values)
ONE_LEVEL = 1 / 255


def shadow_psnr(enhancer: Enhancer, image, reference: np.ndarray, shadows: np.ndarray) -> float:
    enhanced, _ = enhancer.enhance_decoded(decode_image(image))
    return quality.psnr(enhanced.pixels, reference, shadows)


# ------------------------------------------------------------------------------------ settings
@pytest.mark.parametrize(("value", "expected"), [(None, "off"), ("off", "off"), ("auto", "auto"), ("2.5", 2.5), (0, 0.0)])
def test_denoise_setting_accepts_off_auto_and_a_noise_level(value, expected):
    assert check_denoise(value) == expected


@pytest.mark.parametrize("value", ["strong", "-1", "nan", "inf", True, [1]])
def test_denoise_setting_refuses_anything_else(value):
    with pytest.raises(SettingsError, match="denoise must be off, auto or a noise level"):
        check_denoise(value)


def test_jpeg_tables_are_read_from_jpeg_files_only(tmp_path, clean_scene):
    codes = (clean_scene * 255 + 0.5).astype(np.uint8)
    Image.fromarray(codes).save(tmp_path / "q75.jpg", quality=75)
    Image.fromarray(codes).save(tmp_path / "q95.jpg", quality=95)
    Image.fromarray(codes).save(tmp_path / "scene.png")
    q75, q95 = read_image(tmp_path / "q75.jpg").jpeg, read_image(tmp_path / "q95.jpg").jpeg
    assert q75.luma_table.shape == (8, 8) and (q75.luma_table >= q95.luma_table).all() and (q75.luma_table > q95.luma_table).any()
    assert read_image(tmp_path / "scene.png").jpeg is None
    with Image.open(tmp_path / "q75.jpg") as image:
        assert jpeg_compression(image).luma_table.tolist() == q75.luma_table.tolist()
    rotated = Image.open(tmp_path / "q75.jpg")
    exif = rotated.getexif()
    exif[0x0112] = 6  # rotated: the blocks are no longer on the decoded grid
    rotated.save(tmp_path / "rotated.jpg", quality=75, exif=exif.tobytes())
    assert read_image(tmp_path / "rotated.jpg").jpeg is None


@pytest.mark.parametrize(("subsampling", "half_resolution_chroma"), [("4:2:0", True), ("4:2:2", False), ("4:4:4", False)])
def test_the_chroma_table_is_kept_for_4_2_0_files_only(tmp_path, clean_scene, subsampling, half_resolution_chroma):
    codes = (clean_scene * 255 + 0.5).astype(np.uint8)
    Image.fromarray(codes).save(tmp_path / "scene.jpg", quality=75, subsampling=subsampling)
    with Image.open(tmp_path / "scene.jpg") as image:
        chroma_table = np.asarray(image.quantization[1], np.float32).reshape(8, 8)
    jpeg = read_image(tmp_path / "scene.jpg").jpeg
    if half_resolution_chroma:
        assert jpeg.chroma_table.tolist() == chroma_table.tolist()
    else:
        assert jpeg.chroma_table is None and jpeg.luma_table is not None
    Image.fromarray(codes[:, :, 0]).save(tmp_path / "gray.jpg", quality=75)
    assert read_image(tmp_path / "gray.jpg").jpeg.chroma_table is None


def test_upsampled_chroma_is_closer_to_the_truth_than_the_decoders(clean_scene):
    """The guided 4:2:0 chroma upsampling brings the chroma of a q75 JPEG closer to the clean scene's."""
    import cv2

    decoded = decode_image(quality.degrade(clean_scene, "jpeg75"))
    ycc = cv2.cvtColor(decoded.pixels, cv2.COLOR_RGB2YCrCb)
    truth = cv2.cvtColor(clean_scene, cv2.COLOR_RGB2YCrCb)
    luma = denoise.deblock_luma(ycc[:, :, 0], decoded.jpeg)
    for channel in (1, 2):
        upsampled = denoise.upsample_chroma(luma, ycc[:, :, channel], decoded.jpeg.chroma_table, denoise.UPSAMPLED_CHROMA_EPS)
        assert upsampled.shape == luma.shape
        error_before = np.abs(ycc[:, :, channel] - truth[:, :, channel]).mean()
        assert np.abs(upsampled - truth[:, :, channel]).mean() < 0.95 * error_before


# ------------------------------------------------------------------------------------ the operators
def test_deblocked_luma_stays_consistent_with_the_file(clean_scene):
    """The deblocked luma's block DCT coefficients stay within half a quantization step of the file's
    (JPEG transforms levels - 128: at q60 the DC step, 13, does not divide the shift's 1024)."""
    import cv2

    image = quality.degrade(clean_scene, "jpeg60")
    decoded = decode_image(image)
    luma = cv2.cvtColor(decoded.pixels, cv2.COLOR_RGB2YCrCb)[:, :, 0]
    deblocked = denoise.deblock_luma(luma, decoded.jpeg)
    assert np.abs(deblocked - luma).max() > 2 * ONE_LEVEL  # it changed something ...
    height, width = (side // 8 * 8 for side in luma.shape)
    dct, table = denoise.dct_matrix(), decoded.jpeg.luma_table
    before = dct @ denoise.block_view(luma[:height, :width] * 255 - 128) @ dct.T
    after = dct @ denoise.block_view(deblocked[:height, :width] * 255 - 128) @ dct.T
    assert (np.abs(after - np.round(before / table) * table) <= table / 2 + 1e-2).all()  # ... within the set


def test_nothing_changes_where_the_gain_is_at_most_one(clean_scene):
    noisy = decode_image(quality.degrade(clean_scene, "iso1600")).pixels
    illumination = np.where(np.arange(noisy.shape[1]) < noisy.shape[1] // 2, 0.2, 1.0).astype(np.float32)
    illumination = np.broadcast_to(illumination, noisy.shape[:2]).copy()
    cleaned, plan = denoise.denoised_input(noisy, illumination, 1.0, "auto")
    assert plan is not None and plan.level.measured > 1
    bright = illumination >= 1
    assert np.array_equal(cleaned[bright], noisy[bright])
    assert np.abs(cleaned[~bright] - noisy[~bright]).mean() > ONE_LEVEL


def test_noise_estimate_follows_the_noise_level(clean_scene):
    gain = np.full(clean_scene.shape[:2], 3.0, np.float32)
    levels = [noise_level.estimate_noise(decode_image(quality.degrade(clean_scene, d)).pixels, gain) * 255
              for d in ("clean16", "iso400", "iso1600", "iso3200")]
    assert levels[0] < noise_level.AUTO_NOISE_FLOOR < levels[1] < levels[2] < levels[3]


@pytest.mark.parametrize("degradation", ["jpeg75", "iso1600", "iso800+jpeg90"])
def test_tiles_give_the_whole_image_result(clean_scene, degradation):
    decoded = decode_image(quality.degrade(clean_scene, degradation))
    rng = np.random.default_rng(0)
    gain = (1 + 4 * rng.random(decoded.pixels.shape[:2])).astype(np.float32)
    plan = denoise.DenoisePlan(2 / 255, decoded.jpeg)
    whole = denoise.denoise_region(decoded.pixels, gain, plan)
    for tile in (16, 40):  # halo larger than the tile; tiles that are not a multiple of 8
        tiled = denoise.denoise_tiled(decoded.pixels, gain, plan, tile)
        assert np.abs(tiled - whole).max() < SEAM_TOLERANCE


def test_tiles_give_the_whole_image_result_on_odd_sizes(clean_scene):
    """A 4:2:0 JPEG of odd width and height: the half-resolution chroma grid ends with a half pair."""
    decoded = decode_image(quality.degrade(np.ascontiguousarray(clean_scene[:93, :125]), "iso800+jpeg75"))
    assert decoded.jpeg.chroma_table is not None
    gain = np.full(decoded.pixels.shape[:2], 3.0, np.float32)
    plan = denoise.DenoisePlan(2 / 255, decoded.jpeg)
    whole = denoise.denoise_region(decoded.pixels, gain, plan)
    for tile in (16, 40):
        assert np.abs(denoise.denoise_tiled(decoded.pixels, gain, plan, tile) - whole).max() < SEAM_TOLERANCE


# ------------------------------------------------------------------------------------ with the network
@pytest.mark.reference
def test_off_gives_the_published_pixels(reference_model):
    path = smallest_reference_image()
    golden = np.asarray(Image.open(golden_for(path)).convert("RGB")).astype(np.int16)
    assert Enhancer(reference_model).settings.denoise == "off"  # the default
    with Image.open(path) as image:
        off = np.asarray(Enhancer(reference_model, denoise="off").enhance(image)).astype(np.int16)
    assert np.abs(off - golden).max() <= 1


@pytest.mark.reference
@pytest.mark.parametrize("degradation", ["clean16", "clean8"])
def test_auto_leaves_a_clean_image_as_it_is(engines, clean_scene, degradation):
    image = quality.degrade(clean_scene, degradation)
    off = engines["off"].enhance(image, output_type="np").astype(np.int32)
    auto = engines["auto"].enhance(image, output_type="np").astype(np.int32)
    assert np.abs(auto - off).max() <= 1


@pytest.mark.reference
def test_a_given_noise_level_is_used_as_it_is(engines, reference_model, clean_scene):
    image = quality.degrade(clean_scene, "iso1600")
    off = engines["off"].enhance(image, output_type="np").astype(int)
    light, strong = (Enhancer(reference_model, denoise=level).enhance(image, output_type="np").astype(int) for level in (1, 4))
    assert 0 < np.abs(light - off).mean() < np.abs(strong - off).mean()


@pytest.mark.reference
@pytest.mark.parametrize(("degradation", "margin"), [("jpeg75", JPEG_MARGIN_DB), ("iso1600", NOISE_MARGIN_DB)])
def test_auto_is_closer_to_the_clean_enhancement_than_off(engines, clean_scene, degradation, margin):
    reference, _ = quality.enhance_pixels(engines["off"], clean_scene)
    pixel_values = torch.from_numpy(clean_scene).permute(2, 0, 1).unsqueeze(0)
    shadows = 1 / engines["off"].illumination(pixel_values)[0, 0].numpy() > quality.SHADOW_GAIN
    assert shadows.mean() > 0.2
    image = quality.degrade(clean_scene, degradation)
    off = shadow_psnr(engines["off"], image, reference, shadows)
    auto = shadow_psnr(engines["auto"], image, reference, shadows)
    assert auto > off + margin, f"{degradation}: auto {auto:.2f} dB, off {off:.2f} dB in the shadows"


@pytest.mark.reference
def test_denoised_engine_in_tiles_equals_one_pass(reference_model, clean_scene):
    image = quality.degrade(clean_scene, "iso800+jpeg90")
    whole = Enhancer(reference_model, denoise="auto", tile_size=0).enhance(image, output_type="pt")
    tiled = Enhancer(reference_model, denoise="auto", tile_size=48).enhance(image, output_type="pt")
    assert (tiled - whole).abs().max().item() < 1e-4


@pytest.mark.reference
def test_fast_mode_with_denoise(reference_model, clean_scene):
    fast = {s: Enhancer(reference_model, mode="fast", fast_downscale=2, denoise=s) for s in ("off", "auto")}
    reference, _ = quality.enhance_pixels(fast["off"], clean_scene)
    pixel_values = torch.from_numpy(clean_scene).permute(2, 0, 1).unsqueeze(0)
    shadows = 1 / fast["off"].illumination(pixel_values)[0, 0].numpy() > quality.SHADOW_GAIN
    image = quality.degrade(clean_scene, "iso1600")
    assert shadow_psnr(fast["auto"], image, reference, shadows) > shadow_psnr(fast["off"], image, reference, shadows) + NOISE_MARGIN_DB


# ------------------------------------------------------------------------------------ the commands
@pytest.mark.reference
def test_cli_denoise_option(tmp_path, clean_scene):
    Image.fromarray(quality.degrade(clean_scene, "iso1600")).save(tmp_path / "noisy.png")
    outputs = {}
    for setting in ("off", "auto"):
        result = run_cli("enhance", tmp_path / "noisy.png", "--model", ENHANCEMENT_CHECKPOINT, "--output", tmp_path / setting,
                         "--denoise", setting, "--quiet")
        assert result.returncode == 0, result.stderr
        outputs[setting] = np.asarray(Image.open(tmp_path / setting / "noisy.png")).astype(np.int16)
    assert np.abs(outputs["auto"] - outputs["off"]).mean() > 1
    refused = run_cli("enhance", tmp_path / "noisy.png", "--denoise", "lots")
    assert refused.returncode == 2 and "denoise must be off, auto or a noise level" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.slow
@pytest.mark.reference
def test_quality_benchmark_prints_its_table_and_writes_the_crops(tmp_path):
    crops = tmp_path / "crops.jpg"
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "quality.py"), "--model", str(ENHANCEMENT_CHECKPOINT), "--width", "64",
         "--scenes", "synthetic", "--degradations", "clean16", "jpeg75", "iso1600", "--crops", str(crops)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    rows = {}  # the first table's rows (the second gives each level's gain)
    for line in result.stdout.splitlines():
        if line.split()[:1] in (["clean16"], ["jpeg75"], ["iso1600"]):
            rows.setdefault(line.split()[0], line.split())
    assert set(rows) == {"clean16", "jpeg75", "iso1600"}
    assert float(rows["iso1600"][7]) > 0 and float(rows["clean16"][7]) == 0  # shadows: auto gains over off, not on clean
    assert "LPIPS: not computed" in result.stdout and "auto's denoising CPU time" in result.stdout
    with Image.open(crops) as picture:
        assert picture.width == 3 * quality.CROP_ZOOM * 48 and picture.height == 2 * quality.CROP_ZOOM * 48
    candidates = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "quality.py"), "--model", str(ENHANCEMENT_CHECKPOINT), "--width", "64",
         "--scenes", "synthetic", "--degradations", "iso1600", "--candidates"], capture_output=True, text=True)
    assert candidates.returncode == 0, candidates.stderr
    ours = next(line for line in candidates.stdout.splitlines() if line.startswith("ours (auto)"))
    assert float(ours.split()[2]) > 0 and ours.endswith("%")


@pytest.mark.slow
def test_quality_benchmark_measures_the_cost_on_given_photos(tmp_path, clean_scene):
    codes = (clean_scene * 255 + 0.5).astype(np.uint8)
    Image.fromarray(codes).save(tmp_path / "photo.jpg", quality=75)
    Image.fromarray(codes).save(tmp_path / "photo.png")
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "quality.py"), "--model", str(ENHANCEMENT_CHECKPOINT),
         "--cost", str(tmp_path / "photo.jpg"), str(tmp_path / "photo.png")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("photo.jpg: 128 x 96 (JPEG, 4:2:0; auto: ") and lines[1].startswith("photo.png: 128 x 96 (not a JPEG; auto: ")
    assert all(line.endswith("of exact mode's network") for line in lines)


@pytest.mark.reference
def test_evaluate_takes_the_denoise_option(tmp_path, engines, clean_scene):
    """`cliplit evaluate --denoise auto` scores the denoised enhancement: closer to the clean scene's than off."""
    from cliplit.imaging.codec import DecodedImage
    from cliplit.imaging.files import write_image

    (tmp_path / "inputs").mkdir()
    (tmp_path / "targets").mkdir()
    Image.fromarray(quality.degrade(clean_scene, "iso1600")).save(tmp_path / "inputs" / "scene.png")
    reference, _ = quality.enhance_pixels(engines["off"], clean_scene)
    write_image(tmp_path / "targets" / "scene.png", DecodedImage(reference, None, 16))
    scores = {}
    for setting in ("off", "auto"):
        result = run_cli("evaluate", tmp_path / "inputs", "--targets", tmp_path / "targets", "--model", ENHANCEMENT_CHECKPOINT,
                         "--metrics", "psnr", "--denoise", setting, "--quiet", "--output", tmp_path / setting)
        assert result.returncode == 0, result.stderr
        (row,) = json.loads((tmp_path / setting / "summary.json").read_text()).values()
        scores[setting] = row["psnr"]
    assert scores["auto"] > scores["off"] + NOISE_MARGIN_DB


@pytest.mark.reference
def test_pipeline_takes_the_denoise_setting(converted_model_dir, clean_scene):
    from transformers import pipeline

    import cliplit

    image = Image.fromarray(quality.degrade(clean_scene, "iso1600"))
    cleaner = pipeline("backlit-enhancement", model=str(converted_model_dir), device="cpu", denoise="auto")
    expected = Enhancer(cliplit.load_network(converted_model_dir), denoise="auto").enhance(image)
    np.testing.assert_array_equal(np.asarray(cleaner(image)), np.asarray(expected))
