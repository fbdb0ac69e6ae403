"""`--denoise auto` on compressed inputs without a JPEG file's tables: a PNG-saved (and cropped) JPEG is
deblocked as the JPEG file is, a WebP is cleaned at the codec's level, clean inputs are left identical, what it
did is said once per file (not with -q), a video gets one level per scene, and 16-bit, alpha and gray inputs keep
what they are."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
import torch
from conftest import ENHANCEMENT_CHECKPOINT, REPO_ROOT, smallest_reference_image
from denoise_scenes import quality  # the fixtures clean_scene and engines: tests/conftest.py's plugin
from helpers import run_cli
from PIL import Image

from cliplit.engine import denoise
from cliplit.engine.enhancer import Enhancer
from cliplit.imaging.codec import DecodedImage, decode_image
from cliplit.imaging.files import read_image

# Shadow PSNR that `auto` must gain over `off` on the small case (measured there: +1.81 dB, +0.68 dB, +1.41 dB;
# docs/denoise.md gives the full benchmark)
MARGINS_DB = {"iso800+jpeg75+png": 1.2, "iso800+webp75": 0.4, "webp95": 0.8}
SEAM_TOLERANCE = 1e-5


def saved(path, image, **options):
    """`image` (an array or PIL image) written to `path` (format from the suffix); returns `path`."""
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(path, **options)
    return path


# ------------------------------------------------------------------------------------ without the network
def test_tiles_give_the_whole_image_result_with_a_recovered_grid(clean_scene):
    """A JPEG cropped by 3 pixels and saved as PNG: the grid found at (13, 13) is padded back to (0, 0), in tiles too."""
    decoded = decode_image(quality.degrade(clean_scene, "iso800+jpeg75+crop3+png"))
    gain = (1 + 4 * np.random.default_rng(0).random(decoded.pixels.shape[:2])).astype(np.float32)
    plan = denoise.resolve_plan(2.0, decoded.pixels, gain, None)
    assert plan.history is not None and plan.jpeg.origin == (13, 13)
    whole = denoise.apply_plan(decoded.pixels, gain, plan, 0)
    assert np.abs(whole - decoded.pixels).max() > 2 / 255
    for tile in (16, 40):
        assert np.abs(denoise.apply_plan(decoded.pixels, gain, plan, tile) - whole).max() < SEAM_TOLERANCE


# ------------------------------------------------------------------------------------ with the network
@pytest.mark.reference
@pytest.mark.parametrize("degradation", list(MARGINS_DB))
def test_auto_beats_off_on_a_png_saved_jpeg_and_on_webp(engines, clean_scene, degradation):
    reference, _ = quality.enhance_pixels(engines["off"], clean_scene)
    pixel_values = torch.from_numpy(clean_scene).permute(2, 0, 1).unsqueeze(0)
    shadows = engines["off"].illumination(pixel_values)[0, 0].numpy() ** -engines["off"].strength > quality.SHADOW_GAIN
    image = decode_image(quality.degrade(clean_scene, degradation, seed=3))
    assert image.jpeg is None  # no file tables: what auto finds, it finds in the pixels
    off, auto = (engines[setting].enhance_decoded(image)[0] for setting in ("off", "auto"))
    gain = quality.psnr(auto.pixels, reference, shadows) - quality.psnr(off.pixels, reference, shadows)
    assert gain > MARGINS_DB[degradation], f"{degradation}: auto gains {gain:+.2f} dB in the shadows"
    assert (auto.denoised.history is not None) == ("jpeg" in degradation)
    assert auto.denoised.level.codec == ("webp" in degradation)


@pytest.mark.reference
def test_a_png_saved_jpeg_is_cleaned_as_the_jpeg_file_is(engines, clean_scene, tmp_path):
    jpeg = saved(tmp_path / "scene.jpg", quality._codes(quality._noisy(clean_scene, 800, 3)), quality=75)
    with Image.open(jpeg) as decoded:
        png = saved(tmp_path / "scene.png", decoded.convert("RGB"))
    from_file, from_png = read_image(jpeg), read_image(png)
    assert from_png.jpeg is None and np.array_equal(from_file.pixels, from_png.pixels)
    file_result, png_result = (engines["auto"].enhance_decoded(image)[0] for image in (from_file, from_png))
    np.testing.assert_array_equal(png_result.denoised.jpeg.luma_table, from_file.jpeg.luma_table)
    np.testing.assert_array_equal(png_result.denoised.jpeg.chroma_table, from_file.jpeg.chroma_table)
    np.testing.assert_array_equal(png_result.pixels, file_result.pixels)


@pytest.mark.reference
@pytest.mark.parametrize(("name", "options"), [("clean.png", {}), ("clean16", None), ("lossless.webp", {"lossless": True}),
                                               ("clean.avif", {"quality": 95, "subsampling": "4:4:4"})])
def test_clean_inputs_are_left_identical(engines, clean_scene, tmp_path, name, options):
    """A clean photo (8-bit PNG, 16 bits), a lossless WebP and a 4:4:4 AVIF at q95: nothing found, the published pixels."""
    if options is None:
        image = decode_image(quality.degrade(clean_scene, "clean16"))
    else:
        image = read_image(saved(tmp_path / name, quality.degrade(clean_scene, "clean8"), **options))
    off, auto = (engines[setting].enhance_decoded(image)[0] for setting in ("off", "auto"))
    assert auto.denoised is None
    np.testing.assert_array_equal(auto.pixels, off.pixels)


@pytest.mark.reference
def test_sixteen_bit_alpha_and_gray_inputs_keep_what_they_are(engines, clean_scene):
    noisy = np.clip(quality._noisy(clean_scene, 1600, 0), 0, 1)
    rgba = np.concatenate([noisy, np.linspace(0, 1, noisy.shape[1], dtype=np.float32)[None, :, None].repeat(noisy.shape[0], 0)], 2)
    inputs = {"16-bit": (noisy * 65535 + 0.5).astype(np.uint16), "alpha": (rgba * 255 + 0.5).astype(np.uint8),
              "gray": (noisy[:, :, 1] * 255 + 0.5).astype(np.uint8)}
    for kind, array in inputs.items():
        image = decode_image(array)
        off, auto = (engines[setting].enhance_decoded(image)[0] for setting in ("off", "auto"))
        assert auto.denoised is not None and np.abs(auto.pixels - off.pixels).mean() > 1 / 255, kind
        assert (auto.bit_depth, auto.grayscale) == (image.bit_depth, image.grayscale), kind
        if kind == "alpha":
            np.testing.assert_array_equal(auto.alpha, image.alpha)
        if kind == "gray":
            assert np.abs(auto.pixels[:, :, 0] - auto.pixels[:, :, 2]).max() < 1e-5  # still gray (float rounding of YCbCr)


@pytest.mark.reference
def test_the_cli_says_what_auto_did_once_per_changed_file_and_quiet_silences_it(clean_scene, tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    with Image.open(io.BytesIO(_jpeg_bytes(quality._codes(clean_scene)))) as decoded:
        saved(folder / "from_jpeg.png", np.asarray(decoded.convert("RGB"))[3:, 3:])  # a crop of a JPEG
    saved(folder / "clean.png", quality._codes(clean_scene))
    notes = denoise_notes(folder, tmp_path / "out")
    assert len(notes) == 1, notes
    assert notes[0].startswith("note: ") and str(folder / "from_jpeg.png") in notes[0]
    assert "from_jpeg.png: --denoise auto: JPEG history q≈75 found in a PNG (8x8 grid at (5, 5): a crop): deblocked" in notes[0]
    assert denoise_notes(folder, tmp_path / "quiet", "-q") == []


def test_a_file_auto_leaves_as_it_is_gets_no_note(tmp_path):
    """A black JPEG: its tables are known, but deblocking a flat block changes no code of the output."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(folder / "black.jpg", quality=50)
    assert denoise_notes(folder, tmp_path / "auto") == []
    published = run_cli("enhance", folder, "--model", ENHANCEMENT_CHECKPOINT, "--output", tmp_path / "off", "-q")
    assert published.returncode == 0, published.stderr
    assert (tmp_path / "auto" / "black.png").read_bytes() == (tmp_path / "off" / "black.png").read_bytes()


def denoise_notes(source, output, *options) -> list[str]:
    """The `note:` lines of `cliplit enhance SOURCE --denoise auto`, run in this process."""
    result = run_cli("enhance", source, "--model", ENHANCEMENT_CHECKPOINT, "--output", output, "--denoise", "auto", *options)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("note:")]


def _jpeg_bytes(codes: np.ndarray, quality_setting: int = 75) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(codes).save(buffer, "JPEG", quality=quality_setting)
    return buffer.getvalue()


@pytest.mark.reference
def test_a_video_gets_one_level_per_scene(reference_model):
    """Two shots of noisy frames (a cut between them): each shot measured on its first frame, cleaned with that plan."""
    from cliplit.video.scene_denoise import SceneDenoiser

    clip = quality.video_clip(6, 48, 64)
    frames = [DecodedImage(np.clip(quality._noisy(frame, 1600 if index < 3 else 400, index), 0, 1).astype(np.float32))
              for index, frame in enumerate(clip)]
    engine = Enhancer(reference_model, denoise="auto")
    scenes = SceneDenoiser(engine)
    enhanced = scenes(frames[:2]) + scenes(frames[2:])  # the pipeline hands frames over in batches
    assert [first for first, _ in scenes.scenes] == [1, 4]
    (_, first_plan), (_, second_plan) = scenes.scenes
    assert first_plan.level.measured > second_plan.level.measured  # ISO 1600, then ISO 400
    for index in (1, 2, 4, 5):  # the other frames of each shot: their shot's plan, not their own measurement
        plan = first_plan if index < 3 else second_plan
        assert enhanced[index].denoised is plan
        np.testing.assert_array_equal(enhanced[index].pixels, engine.enhance_decoded(frames[index], denoise=plan)[0].pixels)
    summary = scenes.summary("clip.mp4")
    assert summary.startswith("clip.mp4: --denoise auto, one level per scene (2 of 2 scenes cleaned): scene from frame 1: noise")


@pytest.mark.slow
@pytest.mark.reference
def test_quality_benchmark_measures_compressed_photos_and_the_video_case(tmp_path):
    import subprocess

    pytest.importorskip("av", reason="the video case needs PyAV (the video extra)")
    bench = [sys.executable, str(REPO_ROOT / "bench" / "quality.py"), "--model", str(ENHANCEMENT_CHECKPOINT)]
    photos = subprocess.run([*bench, "--width", "64", "--scenes", "synthetic", "--degradations", "clean8", "jpeg75+crop3+png",
                             "iso800+webp75"], capture_output=True, text=True)
    assert photos.returncode == 0, photos.stderr
    rows = {}  # the first table's rows (the second gives each level's gain)
    for line in photos.stdout.splitlines():
        if line.split()[:1] in (["clean8"], ["jpeg75+crop3+png"], ["iso800+webp75"]):
            rows.setdefault(line.split()[0], line)
    assert rows["clean8"].rstrip().endswith("| -") and "1 of 1" in rows["clean8"]  # left identical, nothing done
    assert "hist q75" in rows["jpeg75+crop3+png"] and "codec" in rows["iso800+webp75"]
    crops = tmp_path / "video.jpg"
    video = subprocess.run([*bench, "--video", "--frames", "4", "--size", "48x64", "--crf", "23", "--crops", str(crops)],
                           capture_output=True, text=True)
    assert video.returncode == 0, video.stderr
    settings = [line[4:].split("  ")[0].strip() for line in video.stdout.splitlines() if line.startswith("  23 ")]
    assert settings[:3] == ["off", "auto", "auto, every frame"] and settings[3].startswith("best fixed")
    with Image.open(crops) as picture:
        assert picture.width == 3 * quality.CROP_ZOOM * 48  # reference | off | auto, the crop as large as the frame allows


@pytest.mark.reference
def test_a_video_file_gets_one_note_and_quiet_silences_it(tmp_path):
    pytest.importorskip("av", reason="video needs PyAV (the video extra)")
    from video_clips import write_test_clip

    clip = write_test_clip(tmp_path / "clip.mp4", frames=4, width=128, height=96, audio=False, photo=smallest_reference_image())
    notes = denoise_notes(clip, tmp_path / "out")
    assert len(notes) == 1 and f"{clip}: --denoise auto, one level per scene (" in notes[0], notes
    assert denoise_notes(clip, tmp_path / "quiet", "-q") == []
