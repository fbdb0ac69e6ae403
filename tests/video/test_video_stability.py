"""The warping error (Lai et al., ECCV 2018) on generated scenes, `--denoise auto` against the amplified noise
flicker, and the video benchmark scripts."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import ENHANCEMENT_CHECKPOINT, REPO_ROOT, smallest_reference_image
from helpers import run_script_process

from cliplit.video.scenes import SCENES, make_scene
from cliplit.video.stability import motion, warping_error


def textured_photo(height: int = 48, width: int = 96, seed: int = 0) -> np.ndarray:
    """A smooth random texture (so that optical flow can follow it), (H, W, 3) float32 in [0, 1]."""
    import cv2

    noise = np.random.default_rng(seed).random((height, width, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 2.0) * 2 - 0.5, 0, 1)


def test_warping_error_is_zero_for_a_still_scene_and_measures_flicker_and_noise():
    photo = textured_photo()
    still = [photo[:32, :48].copy() for _ in range(5)]
    assert warping_error(still) < 1e-6  # (Farneback finds almost no motion: a few 1e-8 of interpolation)
    for kind in ("exposure-flicker", "noise"):
        assert warping_error(make_scene(kind, photo, 5, 32, 48)) > 1e-4


def test_warping_error_follows_the_motion_of_a_pan():
    photo = textured_photo()
    pan = make_scene("pan", photo, 5, 32, 48)
    still_flow = [(np.zeros((32, 48, 2), np.float32), np.ones((32, 48), bool))] * 4
    assert warping_error(pan) < 0.5 * warping_error(pan, pairs=still_flow)  # the flow explains most of the change
    flow, _ = motion(pan[:2])[0]
    assert abs(float(np.median(flow[8:-8, 8:-8, 0])) - 2) < 0.5  # the window moves 2 px right: a pixel came from 2 px right


@pytest.mark.reference
def test_denoise_auto_cuts_the_amplified_noise_flicker(reference_model):
    """docs/video.md: the noise scene's warping error falls four-fold with --denoise auto (asserted: by half)."""
    from PIL import Image

    from cliplit.engine.enhancer import Enhancer
    from cliplit.imaging.codec import DecodedImage

    with Image.open(smallest_reference_image()) as image:
        photo = np.asarray(image.convert("RGB").resize((128, 192)), dtype=np.float32) / 255
    frames = make_scene("noise", photo, 4, 96, 128)
    pairs = motion(frames)
    errors = {}
    for setting in ("off", "auto"):
        enhancer = Enhancer(reference_model, denoise=setting)
        errors[setting] = warping_error([enhancer.enhance_decoded(DecodedImage(f))[0].pixels for f in frames], pairs=pairs)
    assert errors["auto"] < 0.5 * errors["off"], errors


@pytest.mark.slow
@pytest.mark.reference
def test_video_benchmarks_print_their_rows(tmp_path):
    pytest.importorskip("av", reason="video needs PyAV (the video extra)")
    stability = run_script_process(REPO_ROOT / "bench" / "video_stability.py", "--model", ENHANCEMENT_CHECKPOINT,
                                   "--photos", smallest_reference_image(), "--frames", "3", "--size", "32x40",
                                   "--denoise", "off", "auto", timeout=600)
    assert stability.returncode == 0, stability.stderr
    rows = [line.split() for line in stability.stdout.splitlines() if line.startswith("mean")]
    assert [row[1] for row in rows] == list(SCENES) and all(len(row) == 6 for row in rows)  # input, g2*input, off, auto
    assert all(float(value) >= 0 for row in rows for value in row[2:])
    speed = run_script_process(REPO_ROOT / "bench" / "video_speed.py", "--model", ENHANCEMENT_CHECKPOINT,
                               "--photo", smallest_reference_image(), "--size", "64x48", "--frames", "3", "--modes", "exact", "fast",
                               timeout=600)
    assert speed.returncode == 0, speed.stderr
    found = re.findall(r"^(exact|fast)\s+batch\s+\d+\s+network\s+([\d.]+) fps\s+pipeline\s+([\d.]+) fps", speed.stdout, re.M)
    assert [mode for mode, _, _ in found] == ["exact", "fast"] and all(float(n) > 0 and float(p) > 0 for _, n, p in found)
