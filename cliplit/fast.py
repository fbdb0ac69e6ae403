"""Fast mode: the illumination estimated at reduced resolution, brought back to full resolution edge-aware.

The network runs on the image downscaled by `FAST_DOWNSCALE` (area average), which costs about
1 / FAST_DOWNSCALE**2 of the exact pass. The low-resolution illumination is upsampled with a fast
guided filter (He & Sun, "Fast Guided Filter", 2015): the local linear model L ~ a . I + b
(a per colour channel) is fitted on the low-resolution image in boxes of radius `GUIDED_RADIUS`,
the coefficients a, b are upsampled bilinearly, and L = a . I + b is evaluated with the full-
resolution input I as guide, so illumination edges follow the edges of the photo.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FAST_DOWNSCALE = 4  # the network runs on (H / 4) x (W / 4) pixels
GUIDED_RADIUS = 8  # box radius of the guided filter, in low-resolution pixels
GUIDED_EPS = 1e-4  # regularization of the guided filter (image values in [0, 1])
MIN_LOW_RES_SIDE = 16  # never run the network on fewer pixels than this per side
# Documented fidelity floor of fast mode (defaults above) against exact mode on the reference photos,
# 8-bit output PSNR; measured 30.9-32.0 dB (README, bench/benchmark.py), asserted by tests/test_fast.py.
FAST_PSNR_FLOOR_DB = 30.0


def _box_sum(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """Sum over windows [i - radius, i + radius] along `dim` (zeros outside), by cumulative sums: same shape."""
    size = x.shape[dim]
    pad = [0, 0] * (x.ndim - 1 - dim) + [radius + 1, radius]  # one extra leading zero for the difference
    cumulative = torch.cumsum(F.pad(x, pad), dim=dim)
    return cumulative.narrow(dim, 2 * radius + 1, size) - cumulative.narrow(dim, 0, size)


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """
    Mean of (N, C, H, W) over (2r+1)^2 boxes clipped at the border (the guided filter's f_mean): same
    shape. O(1) per pixel whatever the radius (separable cumulative sums; use float64 inputs for accuracy).
    """
    height, width = x.shape[-2:]
    ones_h = torch.ones(1, 1, height, 1, dtype=x.dtype, device=x.device)
    ones_w = torch.ones(1, 1, 1, width, dtype=x.dtype, device=x.device)
    count = _box_sum(ones_h, radius, 2) * _box_sum(ones_w, radius, 3)
    return _box_sum(_box_sum(x, radius, 2), radius, 3) / count


def guided_coefficients(guide: torch.Tensor, source: torch.Tensor, radius: int, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """
    The guided filter's local linear model source ~ a . guide + b, fitted in boxes of `radius`.
    `guide`: (N, 3, h, w); `source`: (N, 1, h, w) -> a (N, 3, h, w), b (N, 1, h, w), box-averaged.

    Colour guide: a = (Sigma + eps I)^-1 cov(guide, source) per pixel (3x3 solve).
    """
    n, c, h, w = guide.shape
    mean_i = box_mean(guide, radius)
    mean_p = box_mean(source, radius)
    cov_ip = box_mean(guide * source, radius) - mean_i * mean_p
    products = torch.stack([guide[:, i] * guide[:, j] for i in range(c) for j in range(c)], dim=1)
    means = torch.stack([mean_i[:, i] * mean_i[:, j] for i in range(c) for j in range(c)], dim=1)
    sigma = (box_mean(products, radius) - means).permute(0, 2, 3, 1).reshape(n, h, w, c, c)
    sigma = sigma + eps * torch.eye(c, dtype=guide.dtype, device=guide.device)
    a = torch.linalg.solve(sigma, cov_ip.permute(0, 2, 3, 1).unsqueeze(-1)).squeeze(-1).permute(0, 3, 1, 2)
    b = mean_p - (a * mean_i).sum(1, keepdim=True)
    return box_mean(a, radius), box_mean(b, radius)


def fast_guided_upsample(
    guide_full: torch.Tensor, guide_low: torch.Tensor, source_low: torch.Tensor, radius: int = GUIDED_RADIUS, eps: float = GUIDED_EPS
) -> torch.Tensor:
    """
    Upsample `source_low` (N, 1, h, w) to the size of `guide_full` (N, 3, H, W), edge-aware: fit the
    guided filter between `guide_low` (N, 3, h, w) and `source_low`, upsample its coefficients
    bilinearly, apply them to `guide_full`. Returns (N, 1, H, W).
    """
    a, b = guided_coefficients(guide_low.double(), source_low.double(), radius, eps)
    size = guide_full.shape[-2:]
    a = F.interpolate(a.float(), size=size, mode="bilinear", align_corners=False)
    b = F.interpolate(b.float(), size=size, mode="bilinear", align_corners=False)
    return (a * guide_full).sum(1, keepdim=True) + b


def low_resolution_size(height: int, width: int, downscale: float) -> tuple[int, int]:
    """(h, w) of the image the network sees in fast mode: divided by `downscale`, at least MIN_LOW_RES_SIDE."""
    return (
        min(height, max(MIN_LOW_RES_SIDE, round(height / downscale))),
        min(width, max(MIN_LOW_RES_SIDE, round(width / downscale))),
    )


def estimate_fast(runtime, pixels: torch.Tensor, downscale: float = FAST_DOWNSCALE, estimate_low=None) -> torch.Tensor:
    """
    Fast-mode illumination: `pixels` (1, 3, H, W) in [0, 1] -> (1, 1, H, W) float32 on the device of
    `pixels`. `estimate_low(runtime, low_pixels)` computes the low-resolution map (default: whole pass).
    """
    if downscale < 1:
        raise ValueError(f"fast-mode downscale must be >= 1, got {downscale}")
    height, width = pixels.shape[-2:]
    guide_full = pixels.to(runtime.device, torch.float32)
    low_size = low_resolution_size(height, width, downscale)
    if low_size == (height, width):
        guide_low = guide_full
    else:
        guide_low = F.interpolate(guide_full, size=low_size, mode="area")
    low = (estimate_low or (lambda rt, x: rt.whole(x)))(runtime, guide_low).float()
    if low_size == (height, width):
        return low.to(pixels.device)
    illumination = fast_guided_upsample(guide_full, guide_low, low)
    floor = runtime.config.illumination_floor
    return illumination.clamp_min_(floor).to(pixels.device)


__all__ = ["estimate_fast", "FAST_PSNR_FLOOR_DB", "fast_guided_upsample", "guided_coefficients", "box_mean", "FAST_DOWNSCALE"]
