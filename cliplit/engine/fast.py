"""Fast mode: the illumination estimated at reduced resolution by a scale-matched network.

The network runs on the image downscaled by `FAST_DOWNSCALE` (area average), which costs about
1 / FAST_DOWNSCALE**2 of the exact pass, and its map is brought back to full resolution bicubically.

Running the published network as it is on a smaller image gives a different map (30-32 dB against
exact at 1/4): its 3x3 filters were trained to see a 3x3-pixel neighbourhood of the full-resolution
photo, and at 1/4 resolution they see 12x12 pixels of it. So fast mode first makes every 3x3 kernel
see, at the low resolution, what it saw at full resolution (`scale_matched_kernel`):

A 3x3 convolution with taps w[k, l] (offsets k, l in {-1, 0, 1}) responds to a smooth map f as

    sum_{p, q <= 2} M_pq * d^p/dy^p d^q/dx^q f / (p! q!),   with moments  M_pq = sum_{k, l} w[k, l] k^p l^q

(the Taylor expansion of f to second order per axis; the nine moments determine the nine taps).
On the image downscaled by s_y x s_x, a derivative of order (p, q) in low-resolution pixels is
s_y^p s_x^q times the full-resolution one, so the kernel with moments M_pq / (s_y^p s_x^q) computes at
low resolution what the original computes at full resolution. Per axis this is the linear map
w' = V^-1 diag(1, 1/s, 1/s^2) V w, where V (rows: moments 0, 1, 2; columns: taps -1, 0, 1) takes taps
to moments. The pyramid pooling (averages over fixed fractions of the image) and the 1x1 and
pointwise layers need no change. The map is smooth at this scale, so it is brought back bicubically
(measurements and the comparison with an edge-aware upsampler: docs/fast-mode.md).
"""

from __future__ import annotations

import copy
import threading

import torch
import torch.nn.functional as F
from torch import nn

from ..model.network import KERNEL_SIZE
from .runtime import Runtime

MIN_LOW_RES_SIDE = 16  # never run the network on fewer pixels than this per side
SCALE_DECIMALS = 2  # downscaling factors are rounded to this many decimals ...
SCALE_MATCHED_KEPT = 4  # ... and this many scale-matched runtimes are kept per engine
TAP_OFFSETS = (-1.0, 0.0, 1.0)  # offsets of a 3x3 kernel's taps along one axis
# Fidelity floor of fast mode (defaults above) against exact mode on the reference photos, 8-bit
# output PSNR (figures: docs/fast-mode.md), asserted by the tests.
FAST_PSNR_FLOOR_DB = 45.0


def scale_matched_kernel(scale: float) -> torch.Tensor:
    """
    The 3x3 float64 matrix T that maps the three taps of a kernel axis (offsets -1, 0, 1) to the taps
    that act on an image downscaled by `scale` as the original taps act at full resolution: moment p
    (sum of tap * offset^p, p = 0, 1, 2) is divided by scale^p. `scale` = 1 gives the identity.
    """
    offsets = torch.tensor(TAP_OFFSETS, dtype=torch.float64)
    powers = range(len(TAP_OFFSETS))  # moments 0, 1, 2
    to_moments = torch.stack([offsets**power for power in powers])
    moment_scales = torch.tensor([float(scale) ** -power for power in powers], dtype=torch.float64)
    return torch.linalg.solve(to_moments, torch.diag(moment_scales) @ to_moments)


@torch.no_grad()
def scale_matched_copy(model: nn.Module, scale_y: float, scale_x: float) -> nn.Module:
    """
    A copy of `model` whose 3x3 convolution kernels are scale-matched (see the module docstring) for an
    input downscaled by `scale_y` vertically and `scale_x` horizontally. `model` is not changed.
    """
    matched = copy.deepcopy(model)
    rows, cols = scale_matched_kernel(scale_y), scale_matched_kernel(scale_x)
    for module in matched.modules():
        if isinstance(module, nn.Conv2d) and module.kernel_size == (KERNEL_SIZE, KERNEL_SIZE):
            weight = module.weight.double()  # (out, in, 3 rows, 3 cols)
            module.weight.copy_(torch.einsum("ab,oibc,dc->oiad", rows, weight, cols))
    return matched


def low_resolution_size(height: int, width: int, downscale: float) -> tuple[int, int]:
    """(h, w) of the image the network sees in fast mode: divided by `downscale`, at least MIN_LOW_RES_SIDE."""
    return (
        min(height, max(MIN_LOW_RES_SIDE, round(height / downscale))),
        min(width, max(MIN_LOW_RES_SIDE, round(width / downscale))),
    )


class ScaleMatchedRuntimes:
    """
    `runtime` and its copies for images downscaled by `scale_y` x `scale_x` (`get`): the same settings, the
    model's 3x3 kernels scale-matched (`scale_matched_copy`), the kept buffers shared. Scales are rounded to
    `SCALE_DECIMALS` decimals and the last `SCALE_MATCHED_KEPT` copies are kept, so a batch of photos builds
    (and, with `compile`, compiles) one per distinct pair of factors. Thread-safe.
    """

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self._matched: dict[tuple[float, float], Runtime] = {}
        self._lock = threading.Lock()

    def get(self, scale_y: float, scale_x: float) -> Runtime:
        key = (round(scale_y, SCALE_DECIMALS), round(scale_x, SCALE_DECIMALS))
        if key == (1.0, 1.0):
            return self.runtime
        with self._lock:
            matched = self._matched.pop(key, None)
            if matched is None:
                base = self.runtime
                matched = Runtime(scale_matched_copy(base.model, *key), base.device, base.dtype, base.channels_last,
                                  base.compiled, workspaces=base.workspaces)
            self._matched[key] = matched  # most recently used last
            while len(self._matched) > SCALE_MATCHED_KEPT:
                self._matched.pop(next(iter(self._matched)))
            return matched


def estimate_fast(runtimes: ScaleMatchedRuntimes, pixels: torch.Tensor, downscale: float, estimate_low) -> torch.Tensor:
    """
    Fast-mode illumination: `pixels` (1, 3, H, W) in [0, 1] -> (1, 1, H, W) float32 on the device of
    `pixels`. `estimate_low(runtime, low_pixels)` computes the low-resolution map (1, 1, h, w) with the
    scale-matched runtime it is given (`cliplit.engine.passes.exact_illumination`).
    """
    if not downscale >= 1:
        raise ValueError(f"fast-mode downscale must be >= 1, got {downscale}")
    runtime = runtimes.runtime
    height, width = pixels.shape[-2:]
    low_size = low_resolution_size(height, width, downscale)
    if low_size == (height, width):
        return estimate_low(runtime, pixels).float().to(pixels.device)
    pixels_low = F.interpolate(pixels.to(runtime.device, torch.float32), size=low_size, mode="area")
    matched = runtimes.get(height / low_size[0], width / low_size[1])
    low = estimate_low(matched, pixels_low).float()
    illumination = F.interpolate(low, size=(height, width), mode="bicubic", align_corners=False)
    return illumination.clamp_min_(runtime.config.illumination_floor).to(pixels.device)


__all__ = ["FAST_PSNR_FLOOR_DB", "ScaleMatchedRuntimes", "estimate_fast", "scale_matched_copy", "scale_matched_kernel"]
