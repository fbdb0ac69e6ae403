"""JPEG compression history recovered from decoded pixels, as image forensics does.

A JPEG saved again as a PNG (a screenshot, an editor's export, a messaging app's copy), or cropped
first, has lost its file's quantization tables but not their effect: in every 8x8 block of the grid
the encoder used, the block's DCT coefficients (of the levels - 128) still lie on the lattice of
the quantization steps, within the decoder's rounding (about 0.3 levels). `jpeg_history` finds:

1. **the grid** (`find_grid`): of the 64 possible origins, the one whose blocks have the most DCT
   coefficients that round to zero (Nikoukhah et al., "JPEG grid detection based on the number of
   DCT zeros", 2019): quantization zeroes most coefficients of the encoder's blocks, not of others;
2. **the luma steps** (`measured_step`, one per frequency): the largest step q whose multiples hold
   the non-zero coefficients (at most a quarter of them farther than the rounding allows), the
   lattice seen in the coefficient histograms (Fan and de Queiroz, 2003); a frequency with too few
   non-zero coefficients is not measured;
3. **the table**: libjpeg's tables (the Annex K tables scaled by a quality, which libjpeg, Pillow
   and most web software write) whose entries equal every measured step give the whole table and the
   quality; other tables keep the measured steps, with the tightest step consistent with the pixels
   (twice the largest coefficient) where none could be measured;
4. **4:2:0 chroma** (`chroma_history`): the decoder's upsampling undone (`decoded_chroma_plane`) on
   each of the 4 grids of 16x16 blocks that the luma grid allows, the chroma steps measured there; the
   grid where they form a lattice (and libjpeg's chroma table at the luma's quality, when it fits)
   gives the chroma table.

An image that has no such history (never compressed, resized since, or compressed by another codec:
WebP, AVIF, HEIC and video codecs predict blocks from their neighbours and filter their edges, so no
lattice survives in the pixels) has no lattice at any grid: fewer than `MIN_STEPS` steps of 2 or more
are measured and `jpeg_history` returns None.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from ..imaging.jpeg import CHROMA_SUBSAMPLING, JPEG_BLOCK, JpegCompression
from .denoise import LEVEL_SHIFT, LEVELS, block_view, dct_matrix, decoded_chroma_plane

MCU = JPEG_BLOCK * CHROMA_SUBSAMPLING  # 4:2:0 blocks cover 16x16 pixels
ZERO = 0.5  # a coefficient that rounds to zero (grid search)
GRID_MAX_SIDE = 512  # the grid is searched in a central window of at most this side ...
ANALYSIS_MAX_SIDE = 2048  # ... and the steps measured in one of at most this side
# Coefficients from this magnitude on (levels) show the lattice; smaller ones may be zeros: the decoder
# rounds each pixel, which in a smooth ramp makes a staircase with high-frequency coefficients up to ~2.4
NONZERO = 2.5
SAMPLED_NONZERO = 4096  # a step is measured from at most this many non-zero coefficients (evenly spaced)
ROUNDING = 0.35  # std of a decoded coefficient around its lattice point (levels; pixels rounded by the decoder)
CHROMA_ROUNDING = 1.5  # the same on the chroma brought back to half resolution (smooth blocks: rounding staircases)
OFF_LATTICE = 0.05  # share of coefficients the lattice model lets lie anywhere (clipped pixels, rounding staircases)
MIN_EVIDENCE = 20.0  # log-likelihood ratio (nats) from which a step counts as measured
MAX_STEP = 255  # baseline JPEG's largest step
MIN_STEPS = 6  # a history: at least this many measured luma steps ...
EVIDENCE_DECIMALS = 3  # evidences equal to this many decimals tie (the same sums, added in another order)
MIN_AGREEMENT = 0.8  # ... of which this share at least are those of libjpeg's table at one quality
OPENCV_CHROMA_OFFSET = LEVEL_SHIFT - LEVELS / 2  # OpenCV centres float chroma on 0.5 (127.5 levels), JPEG on 128
QUALITIES = range(1, 101)  # libjpeg's quality scale


@dataclass(frozen=True)
class JpegHistory:
    """
    A JPEG compression found in decoded pixels: `compression` its tables and grid origin, `quality` the
    libjpeg quality whose tables these are (None: other tables), `measured` how many of the 64 luma
    steps were measured directly.
    """

    compression: JpegCompression
    quality: int | None
    measured: int


def luma_and_chroma(pixels: np.ndarray) -> np.ndarray:
    """
    (H, W, 3) RGB float32 in [0, 1] -> (H, W, 3) Y, Cr, Cb in whole levels: JPEG's BT.601 conversion
    (OpenCV's), rounded as the decoder rounded its planes before converting them to RGB (the RGB
    rounding moves them by at most ~0.45 levels, consistently over a block: unrounded, the DC would
    move by 8 times that).
    """
    import cv2

    ycc = cv2.cvtColor(pixels, cv2.COLOR_RGB2YCrCb) * LEVELS
    ycc[:, :, 1:] += OPENCV_CHROMA_OFFSET
    return np.round(ycc)


def usable_blocks(clipped: np.ndarray, plane: np.ndarray, side: int = JPEG_BLOCK) -> np.ndarray:
    """
    (H, W) bool clipped pixels and (H, W) levels, both block-aligned -> (H/side, W/side) bool: the
    blocks without clipped pixels (clipping moves coefficients off the lattice) and not flat (a flat
    8-bit block's DC is a multiple of 8 whatever the compression).
    """
    rows, cols = plane.shape[0] // side, plane.shape[1] // side
    blocks = plane.reshape(rows, side, cols, side)
    flat = blocks.max(axis=(1, 3)) == blocks.min(axis=(1, 3))
    return (clipped.view(np.uint8).reshape(rows, side, cols, side).max(axis=(1, 3)) == 0) & ~flat


def block_coefficients(plane: np.ndarray, clipped: np.ndarray, origin: tuple[int, int], dct: np.ndarray) -> np.ndarray:
    """
    The 8x8 DCT coefficients (N, 64) of the usable blocks of `plane` (H, W) in levels whose grid starts
    at `origin` (row, column); `clipped` (H, W) bool.
    """
    top, left = origin
    height, width = ((side - start) // JPEG_BLOCK * JPEG_BLOCK for side, start in zip(plane.shape, origin))
    window = plane[top : top + height, left : left + width]
    usable = usable_blocks(clipped[top : top + height, left : left + width], window)
    coefficients = dct @ block_view(window - LEVEL_SHIFT) @ dct.T
    return coefficients[usable].reshape(-1, JPEG_BLOCK * JPEG_BLOCK)


def central_window(height: int, width: int, side: int) -> tuple[slice, slice]:
    """The central window of at most `side` x `side` pixels of an image, starting on the 16x16 grid (grids keep their origin)."""
    top, left = (max(0, (length - side) // 2) // MCU * MCU for length in (height, width))
    return slice(top, top + side), slice(left, left + side)


def find_grid(luma: np.ndarray, clipped: np.ndarray, dct: np.ndarray) -> tuple[int, int]:
    """The origin (row, column), each in 0-7, of the 8x8 grid whose blocks of `luma` (H, W, levels) hold the most
    DCT zeros, in its central GRID_MAX_SIDE window."""
    window = central_window(*luma.shape, GRID_MAX_SIDE + JPEG_BLOCK)
    luma, clipped = luma[window], clipped[window]
    zeros = np.zeros((JPEG_BLOCK, JPEG_BLOCK))
    for row in range(JPEG_BLOCK):
        for col in range(JPEG_BLOCK):
            coefficients = block_coefficients(luma, clipped, (row, col), dct)
            zeros[row, col] = (np.abs(coefficients[:, 1:]) < ZERO).mean() if coefficients.size else 0.0
    row, col = np.unravel_index(np.argmax(zeros), zeros.shape)
    return int(row), int(col)


def evidence_by_step(values: np.ndarray, rounding: float = ROUNDING) -> np.ndarray:
    """
    For one frequency's coefficients `values` (N,): the log-likelihood ratio (nats) that its non-zero
    coefficients lie on the multiples of each step q = 0..MAX_STEP (within the decoder's rounding,
    `ROUNDING`, a share `OFF_LATTICE` of them anywhere) rather than anywhere: (MAX_STEP + 1,) float,
    0 for q = 0 and 1 (no lattice).
    """
    evidence = np.zeros(MAX_STEP + 1)
    nonzero = values[np.abs(values) >= NONZERO]
    if nonzero.size == 0:
        return evidence
    nonzero = nonzero[:: -(-nonzero.size // SAMPLED_NONZERO)]
    steps = np.arange(2, MAX_STEP + 1, dtype=np.float32)[:, None]
    residual = nonzero - steps * np.round(nonzero / steps)
    density = np.exp(-0.5 * (residual / rounding) ** 2) / (rounding * np.sqrt(2 * np.pi))
    evidence[2:] = np.log((1 - OFF_LATTICE) * steps * density + OFF_LATTICE).sum(axis=1)
    return evidence


def measured_steps(evidence: np.ndarray) -> np.ndarray:
    """(64, MAX_STEP + 1) `evidence_by_step` of each frequency -> (8, 8) float32 steps of the largest
    evidence, NaN where it is under MIN_EVIDENCE (too few non-zero coefficients, or no lattice)."""
    best = np.argmax(evidence, axis=1)
    strong = evidence[np.arange(len(best)), best] >= MIN_EVIDENCE
    return np.where(strong, best, np.nan).astype(np.float32).reshape(JPEG_BLOCK, JPEG_BLOCK)


def libjpeg_tables() -> np.ndarray:
    """(101, 2, 8, 8) float32: the luma and chroma tables that libjpeg (through Pillow) writes at each
    quality 1-100 (index 0 unused)."""
    from PIL import Image

    tables = np.zeros((QUALITIES.stop, 2, JPEG_BLOCK, JPEG_BLOCK), np.float32)
    for quality in QUALITIES:
        buffer = io.BytesIO()
        Image.new("RGB", (JPEG_BLOCK, JPEG_BLOCK)).save(buffer, "JPEG", quality=quality)
        with Image.open(buffer) as image:
            tables[quality] = [np.reshape(image.quantization[k], (JPEG_BLOCK, JPEG_BLOCK)) for k in (0, 1)]
    return tables


def table_evidence(evidence: np.ndarray, table: np.ndarray, frequencies: slice = slice(None)) -> float:
    """The summed `evidence_by_step` (64, MAX_STEP + 1) of the steps of `table` (8, 8), over `frequencies` (of the 64)."""
    steps = table.reshape(-1).astype(int)
    return float(evidence[np.arange(len(steps)), steps][frequencies].sum())


def matching_quality(evidence: np.ndarray, steps: np.ndarray, tables: np.ndarray) -> tuple[int, bool] | None:
    """
    The libjpeg luma table (of `tables`, `libjpeg_tables()`), as it is or transposed (a photo turned by
    90 degrees after decoding), of the largest `table_evidence`: (quality, transposed), or None when it
    does not have at least MIN_AGREEMENT of the measured steps of `steps` (8, 8; NaN: not measured), or
    fewer than MIN_STEPS are measured. (A few measured steps may miss: blocks of one repeated texture
    share one rounding staircase, which can move all their coefficients by a level.)
    """
    known = ~np.isnan(steps)
    if known.sum() < MIN_STEPS:
        return None
    candidates = [(quality, turned) for quality in reversed(QUALITIES) for turned in (False, True)]  # ties: the highest quality
    oriented = {(quality, turned): tables[quality, 0].T if turned else tables[quality, 0] for quality, turned in candidates}
    best = max(candidates, key=lambda candidate: round(table_evidence(evidence, oriented[candidate]), EVIDENCE_DECIMALS))
    agreeing = int(np.sum(oriented[best][known] == steps[known]))
    return best if agreeing >= max(MIN_STEPS, MIN_AGREEMENT * known.sum()) else None


def chroma_evidence(ycc: np.ndarray, clipped: np.ndarray, origin: tuple[int, int], table: np.ndarray, dct: np.ndarray) -> float:
    """
    How well the chroma of `ycc` (H, W, 3, levels) fits a 4:2:0 compression with `table` on the 16x16
    grid starting at `origin`: the `table_evidence` (AC frequencies; a smooth block's DC carries the
    rounding of all its pixels) of both chroma planes brought back to the file's half-resolution grid.
    """
    pad = ((-origin[0] % MCU, 0), (-origin[1] % MCU, 0))
    padded_clipped = np.pad(clipped, pad, mode="edge")
    rows, cols = padded_clipped.shape[0] // CHROMA_SUBSAMPLING, padded_clipped.shape[1] // CHROMA_SUBSAMPLING
    half_clipped = padded_clipped[: 2 * rows, : 2 * cols].reshape(rows, 2, cols, 2).any(axis=(1, 3))
    total = 0.0
    for channel in (1, 2):
        plane = decoded_chroma_plane(np.pad(ycc[:, :, channel] / LEVELS, pad, mode="edge"))[:rows, :cols] * LEVELS
        # the first row and column of blocks are partly padding: skipped
        coefficients = block_coefficients(plane, half_clipped, (JPEG_BLOCK, JPEG_BLOCK), dct)
        evidence = np.stack([evidence_by_step(coefficients[:, k], CHROMA_ROUNDING) for k in range(coefficients.shape[1])]) if coefficients.size else None
        total += table_evidence(evidence, table, slice(1, None)) if evidence is not None else 0.0
    return total


def chroma_origin(ycc: np.ndarray, clipped: np.ndarray, grid: tuple[int, int], table: np.ndarray,
                  dct: np.ndarray) -> tuple[int, int] | None:
    """
    The origin of the 16x16 grid on which the chroma of `ycc` fits a 4:2:0 compression with the chroma
    `table` best, among the 4 that the luma's 8x8 `grid` allows; None when none fits (another layout).
    """
    origins = [((grid[0] + row) % MCU, (grid[1] + col) % MCU) for row in (0, JPEG_BLOCK) for col in (0, JPEG_BLOCK)]
    evidence = [chroma_evidence(ycc, clipped, origin, table, dct) for origin in origins]
    best = int(np.argmax(evidence))
    return origins[best] if evidence[best] >= MIN_EVIDENCE else None


def jpeg_history(pixels: np.ndarray) -> JpegHistory | None:
    """
    The JPEG compression that `pixels` (H, W, 3) float32 RGB in [0, 1], decoded from some file, went
    through (see the module docstring), or None when they show none.
    """
    if min(pixels.shape[:2]) < 2 * MCU:
        return None
    dct = dct_matrix()
    pixels = pixels[central_window(*pixels.shape[:2], ANALYSIS_MAX_SIDE)]  # 16k-65k blocks: plenty for every step
    ycc = luma_and_chroma(pixels)
    clipped = ((pixels <= 0) | (pixels >= 1)).any(axis=2) | (ycc[:, :, 0] <= 0) | (ycc[:, :, 0] >= LEVELS)
    luma = ycc[:, :, 0]
    grid = find_grid(luma, clipped, dct)
    coefficients = block_coefficients(luma, clipped, grid, dct)
    if not coefficients.size:
        return None
    evidence = np.stack([evidence_by_step(coefficients[:, k]) for k in range(coefficients.shape[1])])
    steps = measured_steps(evidence)
    tables = libjpeg_tables()
    match = matching_quality(evidence, steps, tables)
    if match is None:
        return None
    quality, turned = match
    luma_table, chroma_table = (table.T if turned else table for table in tables[quality])
    origin = chroma_origin(ycc, clipped, grid, chroma_table, dct)
    measured = int(np.sum(~np.isnan(steps)))
    if origin is None:
        return JpegHistory(JpegCompression(luma_table, None, grid), quality, measured)
    return JpegHistory(JpegCompression(luma_table, chroma_table, origin), quality, measured)


__all__ = ["JpegHistory", "evidence_by_step", "find_grid", "jpeg_history", "libjpeg_tables", "matching_quality", "measured_steps"]
