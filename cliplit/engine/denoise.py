"""Gain-aware denoising: clean what the enhancement amplifies, in proportion to how much it amplifies it.

CLIP-LIT's output is clamp(I * g, 0, 1) with the gain g = 1 / L**s of the illumination map L. Where a
subject in shadow is lifted by g = 3-10, its sensor noise, the 8x8 blocks and ringing of JPEG, and
banding are lifted as much. The gain is known at every pixel, so the input is cleaned before the
division, with a weight that follows it:

    output = clamp((I + w(g) * (D(I) - I)) * g, 0, 1),   w(g) = clip((g - 1) / (FULL_GAIN - 1), 0, 1)

nothing where g <= 1 (the sky, the highlights: the published pixels), all of D(I) from g = FULL_GAIN
on. The illumination map itself is the network's, unchanged. D works in YCbCr (the JPEG colour space):

1. **JPEG deblocking of the luma** (only when the input is a JPEG whose quantization tables are known,
   `cliplit.imaging.jpeg`): a decoded JPEG lies, in every 8x8 block, within half a quantization step of
   the DCT coefficients the file holds. Smoothing the luma (a bilateral filter; non-local means) and
   projecting each result back into that set (`project_on_quantization`), then averaging the two,
   removes block edges and ringing without inventing detail the file rules out
   (projection-onto-convex-sets deblocking).
2. **Guided upsampling of 4:2:0 chroma** (`upsample_chroma`, JPEGs whose chroma the file holds at half
   resolution, as phones and Pillow save them): the decoder's chroma is brought back to the file's
   half-resolution grid, filtered there guided by the 2x2 means of the luma (of steps 1 and 3), projected onto the chroma's
   quantization set; the guided filter's local linear model chroma = a luma + b is then fitted there,
   and a, b upsampled and applied to the full-resolution cleaned luma (He et al.'s guided upsampling,
   the chroma-from-luma idea of AV1), and projected once more.
3. **An edge-preserving filter**: a bilateral filter of the luma whose colour range follows the noise
   level sigma, and (other inputs) a guided filter of the chroma, guided by the luma (chroma noise and
   JPEG's subsampled chroma are coarse blotches, the luma holds the edges).

sigma (the input's noise, in [0, 1] units) is given (`--denoise S`: S in 8-bit levels) or measured
(`auto`, `cliplit.engine.noise_level`) from the flat pixels of the shadows, the only ones that matter
here, with a floor for images whose chroma a codec subsampled. A JPEG's compression is read from its
file (`cliplit.imaging.jpeg`) or, for an image given as pixels (a PNG-saved or cropped JPEG),
recovered from them (`cliplit.engine.jpeg_history`); a crop's grid is put back at (0, 0) by padding
(`apply_plan`).
Every step is local, so `denoise_tiled` processes tiles with a halo of `plan.halo` real neighbours and
gives the whole-image result; all operators are OpenCV's (bilateral, non-local means, box filter, resize,
colour conversion) and block DCTs as numpy matrix products. Measurements and the choice of this design: docs/denoise.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..imaging.jpeg import CHROMA_SUBSAMPLING, JPEG_BLOCK, JpegCompression
from .noise_level import FULL_GAIN, LEVELS, NoiseLevel, auto_level

if TYPE_CHECKING:
    from .jpeg_history import JpegHistory

# The filters (chosen from the measurements in docs/denoise.md).
LUMA_RADIUS = 3  # bilateral filter of the luma: diameter 2r + 1
LUMA_SPACE_SIGMA = 2.0
LUMA_RANGE_PER_SIGMA = 4.0  # the luma filter's colour range, in noise standard deviations
CHROMA_RADIUS = 2  # guided filter of the chroma by the luma
CHROMA_EPS_PER_SIGMA2 = 1.0  # its regularization, in noise variances ...
MIN_CHROMA_EPS = 1e-5  # ... and at least this (JPEG's coarse chroma on a clean luma)
DEBLOCK_ITERATIONS = 1  # smoothing + projection rounds of the JPEG luma
DEBLOCK_RADIUS = 2
DEBLOCK_SPACE_SIGMA = 1.5
DEBLOCK_RANGE_PER_STEP = 0.5  # the deblocking smoother's colour range, in DC quantization steps
# ... and a non-local means filter (OpenCV, on 16-bit codes: L1 patch distances), each projected, averaged
DEBLOCK_NLM_SHARE = 0.5
DEBLOCK_NLM_H_PER_STEP = 0.25  # its filtering strength, in DC quantization steps
DEBLOCK_NLM_TEMPLATE = 3  # patch side
DEBLOCK_NLM_SEARCH = 15  # search window side
NLM_CODES_PER_LEVEL = 64  # 16-bit codes per 8-bit level (255 * 64 < 2**16)
LEVEL_SHIFT = 128.0  # JPEG transforms values - 128 (so a DC cell is where the encoder's was)
# 4:2:0 chroma (`upsample_chroma`): guided upsampling from the file's half-resolution chroma
UPSAMPLED_CHROMA_RADIUS = 2  # in half-resolution pixels
UPSAMPLED_CHROMA_EPS = 3e-6
DECODER_UPSAMPLING_INVERSION_STEPS = 6  # Richardson iterations that undo the decoder's triangle upsampling
# The decoder's triangle ("fancy") upsampling, 2x2-averaged back to the chroma grid: [1, 6, 1] / 8 per axis
UPSAMPLING_BLUR = np.array([1.0, 6.0, 1.0], dtype=np.float32) / 8
MIN_SIGMA = 1e-4  # below this noise level (0.03 levels) the filters would be the identity
TILE_GRID = JPEG_BLOCK * CHROMA_SUBSAMPLING  # tiles start on the 16x16 grid of 4:2:0 JPEG blocks
WHOLE_PIXELS = 4_000_000  # larger images are denoised in tiles (a few dozen float32 temporaries per pixel)
DENOISE_TILE = 1024


@dataclass(frozen=True)
class DenoisePlan:
    """
    What to clean in one image: `sigma` the std of the input's noise in [0, 1] units (0: no noise
    filter), `jpeg` the JPEG compression to undo (None: not a JPEG, or unknown tables), `history` set
    when that compression was recovered from the pixels (`cliplit.engine.jpeg_history`), not read from
    a JPEG file, `level` what `auto` measured (None: a level given by the user).
    """

    sigma: float
    jpeg: JpegCompression | None = None
    history: JpegHistory | None = None
    level: NoiseLevel | None = None

    @property
    def active(self) -> bool:
        return self.sigma >= MIN_SIGMA or self.jpeg is not None

    @property
    def subsampled_chroma(self) -> bool:
        return self.jpeg is not None and self.jpeg.chroma_table is not None

    @property
    def halo(self) -> int:
        """Pixels of real neighbours a tile needs on each side for the whole-image result."""
        halo = LUMA_RADIUS
        if self.jpeg is not None:  # each round reads the smoothers' radius, then whole 8x8 blocks
            smoother = max(DEBLOCK_RADIUS, DEBLOCK_NLM_SEARCH // 2 + DEBLOCK_NLM_TEMPLATE // 2)
            halo += DEBLOCK_ITERATIONS * (smoother + JPEG_BLOCK)
        if self.subsampled_chroma:  # on the half-resolution grid: inversion, cells, 2 guided fits, 2 projections
            halo += CHROMA_SUBSAMPLING * (DECODER_UPSAMPLING_INVERSION_STEPS + 1 + 3 * JPEG_BLOCK
                                          + 2 * 2 * UPSAMPLED_CHROMA_RADIUS + 1)
        else:
            halo += 2 * CHROMA_RADIUS
        return -(-halo // TILE_GRID) * TILE_GRID  # whole MCUs, so tiles keep the JPEG block grids


def gain_weight(gain: np.ndarray) -> np.ndarray:
    """(H, W) gain -> (H, W) float32 weight of the denoised value: 0 for gain <= 1, 1 from FULL_GAIN on."""
    return np.clip((gain - 1.0) / (FULL_GAIN - 1.0), 0.0, 1.0).astype(np.float32)


def known_compression(pixels: np.ndarray, jpeg: JpegCompression | None) -> tuple[JpegCompression | None, JpegHistory | None]:
    """
    The JPEG compression to undo in `pixels` (H, W, 3): (`jpeg`, None) when the file's is known, else
    the one recovered from the pixels, (compression, its `JpegHistory`), or (None, None).
    """
    if jpeg is not None:
        return jpeg, None
    from .jpeg_history import jpeg_history

    history = jpeg_history(pixels)
    return (history.compression, history) if history is not None else (None, None)


def resolve_plan(setting, pixels: np.ndarray, gain: np.ndarray, jpeg: JpegCompression | None,
                 compression: tuple[JpegCompression | None, JpegHistory | None] | None = None) -> DenoisePlan | None:
    """
    The plan for one image from the `denoise` setting (None or "off": nothing, "auto": sigma measured by
    `cliplit.engine.noise_level.auto_level`, a number: sigma in 8-bit levels); None when there is nothing
    to do. `jpeg`: the compression read from the image's JPEG file; without it, a JPEG history is looked
    for in the pixels (`compression`: `known_compression`'s answer, when already found).
    """
    if setting is None or setting == "off":
        return None
    jpeg, history = compression if compression is not None else known_compression(pixels, jpeg)
    level = auto_level(pixels, gain, jpeg is not None) if setting == "auto" else None
    sigma = level.sigma if level is not None else float(setting) / LEVELS
    plan = DenoisePlan(sigma, jpeg, history, level)
    return plan if plan.active else None


# ------------------------------------------------------------------------------------ JPEG deblocking
def dct_matrix(size: int = JPEG_BLOCK) -> np.ndarray:
    """The orthonormal DCT-II matrix (size, size), float32: row k is the k-th cosine (JPEG's transform)."""
    n = np.arange(size)
    matrix = np.cos(np.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * size)) * math.sqrt(2 / size)
    matrix[0] /= math.sqrt(2)
    return matrix.astype(np.float32)


def block_view(plane: np.ndarray) -> np.ndarray:
    """(H, W) with H, W multiples of 8 -> (H/8, W/8, 8, 8) view of its blocks."""
    height, width = plane.shape
    return plane.reshape(height // JPEG_BLOCK, JPEG_BLOCK, width // JPEG_BLOCK, JPEG_BLOCK).swapaxes(1, 2)


def _unblocks(blocks: np.ndarray) -> np.ndarray:
    rows, cols = blocks.shape[:2]
    return np.ascontiguousarray(blocks.swapaxes(1, 2)).reshape(rows * JPEG_BLOCK, cols * JPEG_BLOCK)


def project_on_quantization(plane: np.ndarray, low: np.ndarray, high: np.ndarray, dct: np.ndarray) -> np.ndarray:
    """`plane` (H, W) block-aligned -> the nearest plane whose block DCT coefficients lie in [low, high]."""
    coefficients = dct @ block_view(plane) @ dct.T
    np.clip(coefficients, low, high, out=coefficients)
    return _unblocks(dct.T @ coefficients @ dct)


def _padded_levels(plane: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] -> JPEG's values (levels - 128), edge-padded to whole 8x8 blocks as encoders pad."""
    height, width = plane.shape
    padded = np.pad(plane * LEVELS - LEVEL_SHIFT, ((0, -height % JPEG_BLOCK), (0, -width % JPEG_BLOCK)), mode="edge")
    return padded.astype(np.float32)


def quantization_cells(plane: np.ndarray, table: np.ndarray, dct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """
    `plane` (H, W) in [0, 1] as decoded -> (low, high) (H/8, W/8, 8, 8): the DCT coefficients of each
    (padded) block that round to the same quantized values as the decoded ones.
    """
    steps = np.round(dct @ block_view(_padded_levels(plane)) @ dct.T / table)
    return (steps - 0.5) * table, (steps + 0.5) * table


def project_plane(plane: np.ndarray, low: np.ndarray, high: np.ndarray, dct: np.ndarray) -> np.ndarray:
    """`plane` (H, W) in [0, 1] -> the nearest (H, W) whose padded blocks' coefficients lie in [low, high]."""
    height, width = plane.shape
    projected = project_on_quantization(_padded_levels(plane), low, high, dct)
    return (projected[:height, :width] + LEVEL_SHIFT) / LEVELS


def _nonlocal_means(plane: np.ndarray, strength: float) -> np.ndarray:
    """OpenCV's non-local means of `plane` (H, W) float32 in levels, `strength` in levels."""
    import cv2

    codes = np.clip(plane * NLM_CODES_PER_LEVEL + 0.5, 0, np.iinfo(np.uint16).max).astype(np.uint16)
    filtered = cv2.fastNlMeansDenoising(codes, h=[strength * NLM_CODES_PER_LEVEL], templateWindowSize=DEBLOCK_NLM_TEMPLATE,
                                        searchWindowSize=DEBLOCK_NLM_SEARCH, normType=cv2.NORM_L1)
    return filtered.astype(np.float32) / NLM_CODES_PER_LEVEL


def deblock_luma(luma: np.ndarray, jpeg: JpegCompression) -> np.ndarray:
    """
    `luma` (H, W) float32 in [0, 1], decoded from a JPEG whose 8x8 block grid starts at its top-left
    pixel -> the luma deblocked by smoothing (a bilateral filter, non-local means) and projection onto the
    quantization set: the average of the two smoothed planes' projections.
    """
    import cv2

    height, width = luma.shape
    dct = dct_matrix()
    table = jpeg.luma_table
    low, high = quantization_cells(luma, table, dct)
    plane = _padded_levels(luma) + LEVEL_SHIFT  # levels, for the filters' ranges
    dc_step = float(table[0, 0])
    for _ in range(DEBLOCK_ITERATIONS):
        bilateral = cv2.bilateralFilter(plane, 2 * DEBLOCK_RADIUS + 1, DEBLOCK_RANGE_PER_STEP * dc_step,
                                        DEBLOCK_SPACE_SIGMA, borderType=cv2.BORDER_REFLECT)
        nonlocal_means = _nonlocal_means(plane, DEBLOCK_NLM_H_PER_STEP * dc_step)
        bilateral, nonlocal_means = (project_on_quantization(smooth - LEVEL_SHIFT, low, high, dct) + LEVEL_SHIFT
                                     for smooth in (bilateral, nonlocal_means))
        plane = bilateral + DEBLOCK_NLM_SHARE * (nonlocal_means - bilateral)  # the set is convex: still in it
    return plane[:height, :width] / LEVELS


# ------------------------------------------------------------------------------------ 4:2:0 chroma
def halve(plane: np.ndarray) -> np.ndarray:
    """(H, W) -> (ceil(H/2), ceil(W/2)): 2x2 means (an odd last row / column repeated), as encoders subsample."""
    import cv2

    height, width = plane.shape
    padded = np.pad(plane, ((0, height % 2), (0, width % 2)), mode="edge")
    return cv2.resize(padded, (padded.shape[1] // 2, padded.shape[0] // 2), interpolation=cv2.INTER_AREA)


def double(plane: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) on the half-resolution grid -> `shape` (H, W): bilinear, sample centres between pixel pairs (JPEG's siting)."""
    import cv2

    height, width = shape
    return cv2.resize(plane, (2 * plane.shape[1], 2 * plane.shape[0]), interpolation=cv2.INTER_LINEAR)[:height, :width]


def decoded_chroma_plane(chroma: np.ndarray) -> np.ndarray:
    """
    A full-resolution chroma plane (H, W) as the decoder upsampled it (triangle filter) -> its estimate on
    the file's half-resolution grid: the 2x2 means, with the [1, 6, 1] / 8 blur that leaves undone
    (Richardson iterations, each within half of the last).
    """
    import cv2

    means = halve(chroma)
    plane = means.copy()
    for _ in range(DECODER_UPSAMPLING_INVERSION_STEPS):
        plane += means - cv2.sepFilter2D(plane, -1, UPSAMPLING_BLUR, UPSAMPLING_BLUR, borderType=cv2.BORDER_REPLICATE)
    return plane


def upsample_chroma(luma: np.ndarray, chroma: np.ndarray, table: np.ndarray, eps: float) -> np.ndarray:
    """
    One chroma plane (H, W) decoded from a 4:2:0 JPEG, with the cleaned `luma` (H, W), both in [0, 1]
    -> the chroma at full resolution, guided by the luma: on the file's half-resolution grid, a guided
    filter (guide: the luma's 2x2 means) projected onto the chroma's quantization set; the guided
    filter's local linear model chroma = a luma + b fitted there, its a and b upsampled and applied to
    the full-resolution luma; the result projected again (through its 2x2 means).
    """
    dct = dct_matrix()
    guide = halve(luma)
    plane = decoded_chroma_plane(chroma)
    low, high = quantization_cells(plane, table, dct)
    slope, offset = guided_coefficients(guide, plane, UPSAMPLED_CHROMA_RADIUS, eps)
    plane = project_plane(slope * guide + offset, low, high, dct)
    slope, offset = guided_coefficients(guide, plane, UPSAMPLED_CHROMA_RADIUS, eps)
    full = double(slope, luma.shape) * luma + double(offset, luma.shape)
    means = halve(full)
    return full + double(project_plane(means, low, high, dct) - means, luma.shape)


# ------------------------------------------------------------------------------------ filters
def _box_mean(plane: np.ndarray, radius: int) -> np.ndarray:
    import cv2

    return cv2.boxFilter(plane, -1, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)


def guided_coefficients(guide: np.ndarray, source: np.ndarray, radius: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """He et al.'s guided filter's averaged local model (a, b), each (H, W): the filter's output is a * guide + b."""
    mean_guide, mean_source = _box_mean(guide, radius), _box_mean(source, radius)
    variance = _box_mean(guide * guide, radius) - mean_guide**2
    slope = (_box_mean(guide * source, radius) - mean_guide * mean_source) / (variance + eps)
    offset = mean_source - slope * mean_guide
    return _box_mean(slope, radius), _box_mean(offset, radius)


def guided_filter(guide: np.ndarray, source: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter with OpenCV box filters: `guide`, `source` (H, W) float32 -> (H, W)."""
    slope, offset = guided_coefficients(guide, source, radius, eps)
    return slope * guide + offset


def denoise_region(pixels: np.ndarray, gain: np.ndarray, plan: DenoisePlan) -> np.ndarray:
    """
    `pixels` (H, W, 3) float32 in [0, 1], `gain` (H, W) float32 -> the gain-weighted clean input
    (H, W, 3) float32 (see the module docstring). The block grid of `plan.jpeg` starts at pixel (0, 0).
    """
    import cv2

    ycc = cv2.cvtColor(pixels, cv2.COLOR_RGB2YCrCb)  # Y, Cr, Cb; float input keeps floats
    luma = ycc[:, :, 0]
    if plan.jpeg is not None:
        luma = deblock_luma(luma, plan.jpeg)
    if plan.sigma >= MIN_SIGMA:
        luma = cv2.bilateralFilter(luma, 2 * LUMA_RADIUS + 1, LUMA_RANGE_PER_SIGMA * plan.sigma, LUMA_SPACE_SIGMA,
                                   borderType=cv2.BORDER_REFLECT)
    if plan.subsampled_chroma:
        eps = max(CHROMA_EPS_PER_SIGMA2 * plan.sigma**2, UPSAMPLED_CHROMA_EPS)
        chroma = [upsample_chroma(luma, ycc[:, :, c], plan.jpeg.chroma_table, eps) for c in (1, 2)]
    else:
        eps = max(CHROMA_EPS_PER_SIGMA2 * plan.sigma**2, MIN_CHROMA_EPS)
        chroma = [guided_filter(luma, ycc[:, :, c], CHROMA_RADIUS, eps) for c in (1, 2)]
    clean = np.stack([luma, *chroma], axis=2)
    clean = cv2.cvtColor(clean.astype(np.float32), cv2.COLOR_YCrCb2RGB)
    weight = gain_weight(gain)[:, :, None]
    return pixels + weight * (clean - pixels)


def denoise_tiled(pixels: np.ndarray, gain: np.ndarray, plan: DenoisePlan, tile: int | None = None) -> np.ndarray:
    """
    `denoise_region` over the whole image, in tiles of about `tile` x `tile` output pixels (None or 0:
    one pass) that read `plan.halo` real neighbours: the same result as one pass, seams included.
    Tile cores are whole 16x16 blocks (4:2:0 MCUs), so each tile keeps the image's JPEG block grids.
    """
    height, width = gain.shape
    if not tile or tile >= max(height, width):
        return denoise_region(pixels, gain, plan)
    from .tiles import balanced_tile

    halo = plan.halo
    output = np.empty_like(pixels)
    step_h = -(-balanced_tile(height, tile) // TILE_GRID) * TILE_GRID
    step_w = -(-balanced_tile(width, tile) // TILE_GRID) * TILE_GRID
    for top in range(0, height, step_h):
        for left in range(0, width, step_w):
            bottom, right = min(top + step_h, height), min(left + step_w, width)
            in_top, in_left = max(top - halo, 0), max(left - halo, 0)
            in_bottom, in_right = min(bottom + halo, height), min(right + halo, width)
            region = denoise_region(pixels[in_top:in_bottom, in_left:in_right], gain[in_top:in_bottom, in_left:in_right], plan)
            output[top:bottom, left:right] = region[top - in_top : bottom - in_top, left - in_left : right - in_left]
    return output


def whole_image_limit_tile(height: int, width: int) -> int | None:
    """The denoising tile for an image the engine ran whole: None (one pass) up to WHOLE_PIXELS, else DENOISE_TILE."""
    return None if height * width <= WHOLE_PIXELS else DENOISE_TILE


def denoised_input(pixels: np.ndarray, illumination: np.ndarray, strength: float, setting,
                   jpeg: JpegCompression | None = None, tile: int | None = None) -> tuple[np.ndarray, DenoisePlan | None]:
    """
    The input to divide by the illumination and the plan that cleaned it: `pixels` (H, W, 3) float32 in
    [0, 1] cleaned in proportion to the gain illumination ** -strength (`illumination` (H, W) float32 > 0,
    the network's map), or (`pixels` itself, None) when `setting` (as `check_denoise` returns it, or a
    `DenoisePlan` to apply as it is, such as a video scene's) is "off" or there is nothing to clean.
    `tile`: the denoising tile (None: one pass up to WHOLE_PIXELS pixels, else DENOISE_TILE).
    """
    if setting == "off" or setting is None or strength == 0:
        return pixels, None
    gain = np.power(illumination, -float(strength), dtype=np.float32)
    plan = setting if isinstance(setting, DenoisePlan) else resolve_plan(setting, pixels, gain, jpeg)
    if plan is None:
        return pixels, None
    return apply_plan(pixels, gain, plan, tile), plan


def apply_plan(pixels: np.ndarray, gain: np.ndarray, plan: DenoisePlan, tile: int | None = None) -> np.ndarray:
    """
    `pixels` (H, W, 3) float32 cleaned by `plan` in proportion to `gain` (H, W): `denoise_tiled`, on the
    image padded at its top and left (edges repeated) so that the JPEG grid of a crop starts at (0, 0).
    `tile`: as `denoised_input`'s.
    """
    height, width = gain.shape
    tile = tile if tile else whole_image_limit_tile(height, width)
    rows, cols = ((-start) % TILE_GRID for start in plan.jpeg.origin) if plan.jpeg is not None else (0, 0)
    if not rows and not cols:
        return denoise_tiled(pixels, gain, plan, tile)
    padded = denoise_tiled(np.pad(pixels, ((rows, 0), (cols, 0), (0, 0)), mode="edge"),
                           np.pad(gain, ((rows, 0), (cols, 0)), mode="edge"), plan, tile)
    return np.ascontiguousarray(padded[rows:, cols:])


__all__ = ["DenoisePlan", "apply_plan", "denoised_input", "FULL_GAIN", "deblock_luma", "denoise_region", "denoise_tiled",
           "gain_weight", "known_compression", "resolve_plan"]
