"""Fast mode: the guided-filter upsampling and its documented fidelity against exact mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cliplit.fast import FAST_PSNR_FLOOR_DB, box_mean, estimate_fast, fast_guided_upsample, low_resolution_size
from cliplit.inference import enhance_image, estimate_illumination, make_runtime

from conftest import golden_for, reference_images_to_check


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_box_mean_matches_a_direct_sum():
    x = torch.rand(1, 2, 9, 11, dtype=torch.float64)
    radius = 2
    result = box_mean(x, radius)
    for y, xx in [(0, 0), (4, 5), (8, 10), (1, 9)]:
        window = x[:, :, max(y - radius, 0) : y + radius + 1, max(xx - radius, 0) : xx + radius + 1]
        assert torch.allclose(result[:, :, y, xx], window.mean(dim=(2, 3)))


def test_guided_upsample_reproduces_a_linear_function_of_the_guide():
    guide = torch.rand(1, 3, 64, 48)
    weights = torch.tensor([0.5, -0.2, 0.3]).view(1, 3, 1, 1)
    source = (guide * weights).sum(1, keepdim=True) + 0.1
    low_guide = F.interpolate(guide, size=(16, 12), mode="area")
    low_source = (low_guide * weights).sum(1, keepdim=True) + 0.1
    upsampled = fast_guided_upsample(guide, low_guide, low_source, radius=2, eps=1e-8)
    assert upsampled.shape == source.shape
    assert (upsampled - source).abs().max().item() < 1e-3


def test_guided_upsample_keeps_an_edge_that_bilinear_blurs():
    guide = torch.zeros(1, 3, 64, 64)
    guide[..., 32:] = 1.0
    source_full = 0.2 + 0.6 * guide[:, :1]
    low_guide = F.interpolate(guide, size=(16, 16), mode="area")
    low_source = F.interpolate(source_full, size=(16, 16), mode="area")
    guided = fast_guided_upsample(guide, low_guide, low_source, radius=2, eps=1e-4)
    bilinear = F.interpolate(low_source, size=(64, 64), mode="bilinear", align_corners=False)
    assert (guided - source_full).abs().mean() < 0.5 * (bilinear - source_full).abs().mean()


def test_fast_mode_shapes_and_values(reference_model):
    pixels = torch.rand(1, 3, 93, 131)
    illumination = estimate_illumination(reference_model, pixels, mode="fast")
    assert illumination.shape == (1, 1, 93, 131)
    assert torch.isfinite(illumination).all()
    assert illumination.min().item() >= reference_model.config.illumination_floor
    assert low_resolution_size(93, 131, 4) == (23, 33)


def test_fast_mode_without_downscaling_is_exact(reference_model):
    pixels = torch.rand(1, 3, 30, 41)
    with torch.inference_mode():
        exact = reference_model.estimate_illumination(pixels)
    fast = estimate_fast(make_runtime(reference_model), pixels, downscale=1)
    assert (fast - exact).abs().max().item() < 1e-5


@pytest.mark.parametrize("image_path", reference_images_to_check(), ids=lambda p: p.stem)
def test_fast_mode_stays_above_its_documented_psnr_floor(reference_model, image_path):
    """Fast-mode output against the exact (golden) output of the published network, 8-bit PSNR."""
    with Image.open(image_path) as image:
        enhanced = enhance_image(reference_model, image.convert("RGB"), mode="fast", output_type="np")
    with Image.open(golden_for(image_path)) as golden:
        exact = np.asarray(golden.convert("RGB"))
    assert enhanced.shape == exact.shape
    assert psnr(enhanced, exact) >= FAST_PSNR_FLOOR_DB
