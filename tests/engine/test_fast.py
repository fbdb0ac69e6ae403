"""Fast mode: scale-matched kernels, the scale-matched runtimes, and the documented fidelity against exact mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import golden_for, reference_images_to_check
from PIL import Image

from cliplit.engine.enhancer import Enhancer
from cliplit.engine.fast import (
    FAST_PSNR_FLOOR_DB,
    SCALE_MATCHED_KEPT,
    ScaleMatchedRuntimes,
    estimate_fast,
    low_resolution_size,
    scale_matched_copy,
    scale_matched_kernel,
)
from cliplit.engine.passes import exact_illumination
from cliplit.engine.runtime import Runtime


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("scale", [1.0, 2.0, 4.0, 3.7])
def test_scale_matched_taps_divide_moment_p_by_scale_to_the_p(scale):
    taps = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))  # 5 kernels' taps at -1, 0, 1
    matched = scale_matched_kernel(scale) @ taps
    offsets = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
    for power in range(3):
        moments = (offsets**power) @ taps
        assert torch.allclose((offsets**power) @ matched, moments / scale**power)


def test_scale_matched_kernel_computes_at_low_resolution_what_the_original_computes_at_full():
    """On a map quadratic along each axis the second-order Taylor expansion is exact: the scale-matched
    kernel on the samples f(s_y i, s_x j) equals the original kernel on the unit grid around (s_y i, s_x j)."""
    scale_y, scale_x, height, width = 4, 3, 12, 14
    generator = torch.Generator().manual_seed(0)
    kernel = torch.randn(1, 1, 3, 3, dtype=torch.float64, generator=generator)
    coefficients = torch.randn(3, 3, dtype=torch.float64, generator=generator)  # f(y, x) = sum_pq c_pq y^p x^q

    def f(ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
        """f on the grid ys x xs: (len(ys), len(xs))."""
        ys, xs = ys.double(), xs.double()
        return torch.stack([ys**p for p in range(3)]).T @ coefficients @ torch.stack([xs**q for q in range(3)])

    low_samples = f(torch.arange(height) * float(scale_y), torch.arange(width) * float(scale_x))
    matched = torch.einsum("ab,oibc,dc->oiad", scale_matched_kernel(scale_y), kernel, scale_matched_kernel(scale_x))
    low = F.conv2d(low_samples[None, None], matched)[0, 0]  # valid convolution: low[i - 1, j - 1] centred at (i, j)
    for i, j in [(1, 1), (3, 5), (10, 12)]:
        window = f(scale_y * i + torch.tensor([-1.0, 0.0, 1.0]), scale_x * j + torch.tensor([-1.0, 0.0, 1.0]))
        assert torch.allclose(low[i - 1, j - 1], (window * kernel[0, 0]).sum())


def test_scale_matched_copy_changes_only_the_copy_s_3x3_kernels(reference_model):
    original = {name: t.clone() for name, t in reference_model.state_dict().items()}
    matched = scale_matched_copy(reference_model, 4.0, 4.0)
    for name, tensor in reference_model.state_dict().items():
        assert torch.equal(tensor, original[name])
    changed = {name for name, t in matched.state_dict().items() if not torch.equal(t, original[name])}
    three_by_three = {name for name, t in original.items() if t.ndim == 4 and t.shape[-2:] == (3, 3)}
    assert changed == three_by_three
    identity = scale_matched_copy(reference_model, 1.0, 1.0)
    for name, tensor in identity.state_dict().items():
        assert torch.allclose(tensor, original[name], atol=1e-7)


def test_a_few_scale_matched_runtimes_are_kept_sharing_the_runtime_s_buffers(reference_model):
    runtime = Runtime(reference_model)
    runtimes = ScaleMatchedRuntimes(runtime)
    assert runtimes.get(1.0, 1.0) is runtime
    matched = runtimes.get(4.001, 3.999)
    assert runtimes.get(4.0, 4.0) is matched  # rounded to SCALE_DECIMALS
    assert matched.workspaces is runtime.workspaces
    for k in range(SCALE_MATCHED_KEPT):
        runtimes.get(2.0 + k, 2.0)
    assert runtimes.get(4.0, 4.0) is not matched  # the least recently used was dropped
    assert len(runtimes._matched) == SCALE_MATCHED_KEPT


def test_scale_matching_brings_the_low_resolution_map_to_the_downscaled_exact_map(reference_model):
    """A smooth synthetic backlit scene at 1/4 resolution: the scale-matched network is much closer to
    the area-downscaled exact map than the unchanged network (which sees a 4x larger neighbourhood)."""
    height, width = 192, 256
    ys, xs = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    generator = torch.Generator().manual_seed(0)
    base = 0.15 + 0.7 * torch.exp(-((xs - 0.6) ** 2 + (ys - 0.3) ** 2) / 0.05)  # a bright light behind
    pixels = (base[None, None] * torch.tensor([1.0, 0.9, 0.8]).view(1, 3, 1, 1)
              + 0.05 * torch.rand(1, 3, height, width, generator=generator)).clamp(0, 1)
    low_pixels = F.interpolate(pixels, size=(height // 4, width // 4), mode="area")
    with torch.inference_mode():
        exact_low = F.interpolate(reference_model.estimate_illumination(pixels), size=low_pixels.shape[-2:], mode="area")
        unchanged = reference_model.estimate_illumination(low_pixels)
        matched = scale_matched_copy(reference_model, 4.0, 4.0).estimate_illumination(low_pixels)
    error_matched = (matched - exact_low).abs().mean().item()
    error_unchanged = (unchanged - exact_low).abs().mean().item()
    assert error_matched < 0.25 * error_unchanged


def test_fast_mode_shapes_and_values(reference_model):
    pixels = torch.rand(1, 3, 93, 131)
    illumination = Enhancer(reference_model, mode="fast").illumination(pixels)
    assert illumination.shape == (1, 1, 93, 131)
    assert torch.isfinite(illumination).all()
    assert illumination.min().item() >= reference_model.config.illumination_floor
    assert low_resolution_size(93, 131, 4) == (23, 33)


def test_fast_mode_without_downscaling_is_exact(reference_model):
    pixels = torch.rand(1, 3, 30, 41)
    with torch.inference_mode():
        exact = reference_model.estimate_illumination(pixels)
    fast = estimate_fast(ScaleMatchedRuntimes(Runtime(reference_model)), pixels, 1, exact_illumination)
    assert (fast - exact).abs().max().item() < 1e-5


@pytest.mark.parametrize("image_path", reference_images_to_check(), ids=lambda p: p.stem)
def test_fast_mode_stays_above_its_documented_psnr_floor(reference_model, image_path):
    """Fast-mode output against the exact (golden) output of the published network, 8-bit PSNR."""
    with Image.open(image_path) as image:
        enhanced = Enhancer(reference_model, mode="fast").enhance(image.convert("RGB"), output_type="np")
    with Image.open(golden_for(image_path)) as golden:
        exact = np.asarray(golden.convert("RGB"))
    assert enhanced.shape == exact.shape
    assert psnr(enhanced, exact) >= FAST_PSNR_FLOOR_DB
