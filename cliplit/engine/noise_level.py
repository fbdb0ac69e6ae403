"""The level `--denoise auto` cleans at, measured from the pixels alone (docs/denoise.md).

Two things make the enhanced shadows grainy or blotchy, and `auto` measures both:

- **Noise that survived** (`estimate_noise`): Immerkaer's estimator (the 3x3 Laplacian difference
  kernel, which cancels smooth shading) on the luma of the shadows: the median response over the
  flatter half of those pixels. Below `AUTO_NOISE_FLOOR` it reads as none (8-bit quantization alone
  is 0.29 levels; clean renderings measure 0.0-0.35), so a clean photo is left unchanged. It looks at
  the finest scale, where a codec has already removed the noise it could not afford to keep: what it
  reads on a compressed image is the noise that is still there.
- **A codec's traces where no grid can be known** (`subsampled_chroma`): WebP, AVIF, HEIC and video
  codecs hold the chroma at half resolution (4:2:0) and predict and filter their blocks, so their
  quantization leaves no lattice in the pixels (`cliplit.engine.jpeg_history` finds none), but their
  chroma keeps the mark of its upsampling: the two pixels of each pair that shared one chroma sample
  differ less than neighbouring pixels of different pairs (`pair_contrast`: 0.0-0.67 on the decoded
  4:2:0 images of the benchmark, 128-512 px wide, 0.91-1.0 on 4:4:4 ones). Such an image is cleaned at `CODEC_LEVEL`
  levels at least: the luma-guided chroma filter puts the blotchy chroma back on the luma's edges,
  and the luma filter takes the codec's ringing and mosquito noise.

A JPEG, whose tables are read from the file or recovered from the pixels, needs no codec level: the
deblocking projection removes what its compression left, and more filtering only removes detail.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVELS = 255.0  # 8-bit levels per unit
FULL_GAIN = 2.0  # the shadows: where the gain reaches this (the denoising's full weight)
# Immerkaer's Laplacian-difference kernel, whose response to white noise of std sigma has std 6 sigma;
# over the flatter half of the pixels, the median absolute response is the 25th percentile of
# |N(0, 6 sigma)|, 0.3186 * 6 sigma.
NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
NOISE_KERNEL_GAIN = 6.0
QUARTILE_TO_STD = 0.3186  # the 25th percentile of |N(0, 1)|
MIN_SHADOW_PIXELS = 64  # fewer shadow pixels than this: nothing to clean, sigma = 0
AUTO_NOISE_FLOOR = 0.5  # levels: a measured noise below this is none
# 4:2:0 chroma: its pair contrast is 0.0-0.67 (libjpeg's, libwebp's and libavif's smooth upsampling, higher on
# small detailed images; ~0 for the pixel repetition of libheif), a 4:4:4 image's 0.91-1.0 (docs/denoise.md)
MAX_SUBSAMPLED_PAIR_CONTRAST = 0.7
MIN_PAIR_STEP = 0.01  # levels: a chroma plane whose neighbours differ less than this has no colour to tell from
CODEC_LEVEL = 0.5  # levels: the least level of an image whose chroma a codec subsampled (docs/denoise.md)


@dataclass(frozen=True)
class NoiseLevel:
    """
    What `auto` found: `sigma` the level to clean at ([0, 1] units; 0: nothing), `measured` the noise
    `estimate_noise` read (levels), `codec` whether a codec's subsampled chroma set a floor.
    """

    sigma: float
    measured: float
    codec: bool


def estimate_noise(pixels: np.ndarray, gain: np.ndarray) -> float:
    """
    The std of the noise of `pixels` (H, W, 3) float32 in [0, 1], in [0, 1] units, measured on the
    luma of the shadows (gain (H, W) >= FULL_GAIN): the median absolute response of Immerkaer's
    kernel, which cancels smooth shading, over the flatter half of those pixels.
    """
    import cv2

    luma = cv2.cvtColor(pixels, cv2.COLOR_RGB2YCrCb)[:, :, 0]
    response = np.abs(cv2.filter2D(luma, -1, NOISE_KERNEL, borderType=cv2.BORDER_REFLECT))
    values = response[gain >= FULL_GAIN]
    if values.size < MIN_SHADOW_PIXELS:
        return 0.0
    flat = values[values <= np.median(values)]  # texture and edges respond more than noise: drop them
    return float(np.median(flat)) / (NOISE_KERNEL_GAIN * QUARTILE_TO_STD)


def pair_contrast(plane: np.ndarray) -> float:
    """
    How much the two pixels of each pair of `plane` (H, W, levels) differ, against neighbouring pixels
    of different pairs: the mean absolute difference between pixels 2j and 2j + 1 over that between
    2j + 1 and 2j + 2 (or the reverse, for pairs that start at odd positions: the smaller ratio), along
    the axis where it is largest (4:2:0 pairs both ways); 1.0 for a plane without pair structure or
    without variation (gray).
    """
    ratios = []
    for axis in (0, 1):
        values = np.moveaxis(plane.astype(np.float32), axis, 0)
        steps = np.abs(np.diff(values, axis=0)).mean(axis=1)  # |x[i+1] - x[i]| averaged over the other axis
        even, odd = steps[0::2].mean(), steps[1::2].mean()
        ratios.append(min(even, odd) / max(even, odd) if max(even, odd) >= MIN_PAIR_STEP else 1.0)
    return float(max(ratios))


def subsampled_chroma(pixels: np.ndarray) -> bool:
    """Whether `pixels` (H, W, 3) float32 in [0, 1] were decoded from a file whose chroma was held at
    half resolution both ways (4:2:0): both chroma planes pair along both axes (`pair_contrast`)."""
    import cv2

    if min(pixels.shape[:2]) < 4:
        return False
    ycc = cv2.cvtColor(pixels, cv2.COLOR_RGB2YCrCb) * LEVELS
    return max(pair_contrast(ycc[:, :, channel]) for channel in (1, 2)) <= MAX_SUBSAMPLED_PAIR_CONTRAST


def auto_level(pixels: np.ndarray, gain: np.ndarray, jpeg_known: bool) -> NoiseLevel:
    """
    The level `auto` cleans `pixels` (H, W, 3) float32 at, given their `gain` (H, W): the noise
    measured in the shadows when it reaches AUTO_NOISE_FLOOR, at least CODEC_LEVEL when a codec
    subsampled the chroma and no JPEG compression is known (`jpeg_known`: the tables of the file, or
    recovered from the pixels, are used by the deblocking instead).
    """
    measured = estimate_noise(pixels, gain) * LEVELS
    level = measured if measured >= AUTO_NOISE_FLOOR else 0.0
    codec = not jpeg_known and bool((gain >= FULL_GAIN).sum() >= MIN_SHADOW_PIXELS) and subsampled_chroma(pixels)
    if codec:
        level = max(level, CODEC_LEVEL)
    return NoiseLevel(level / LEVELS, measured, codec)


__all__ = ["AUTO_NOISE_FLOOR", "CODEC_LEVEL", "NoiseLevel", "auto_level", "estimate_noise", "pair_contrast", "subsampled_chroma"]
