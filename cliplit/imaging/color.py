"""Colour spaces: converting a result from its source's ICC profile to sRGB (`--color-space srgb`) with
LittleCMS through Pillow's `ImageCms`.

8-bit images are transformed by LittleCMS directly. Pillow's LittleCMS transforms take 8-bit colour
only, so a 16-bit image is transformed through a table LittleCMS computes for every 8-bit colour
(256^3 entries, about 2 s), interpolated trilinearly between the 8 codes around each 16-bit colour:
exactly LittleCMS's result at the 8-bit codes, smooth (no banding) between them. Cells at the edge of
the sRGB gamut (a clipped entry) take LittleCMS's 8-bit result instead, as interpolating across the
clip would be wrong. Grayscale images keep their (gray) profile; untagged images are taken as sRGB.
"""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np

from .codec import EIGHT_BIT_MAX, DecodedImage, quantize
from .metadata import ImageMetadata

LUT_STEP = 1  # 8-bit codes between table nodes: every code (a 256^3 table, 48 MiB)
LUT_NODES = EIGHT_BIT_MAX // LUT_STEP + 1
ROWS_PER_CHUNK = 256  # rows interpolated at once (bounds the float temporaries of a large photo)


def srgb_profile_bytes() -> bytes:
    """LittleCMS's built-in sRGB profile, as embedded in converted outputs."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _transform(icc_profile: bytes):
    from PIL import ImageCms

    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        return ImageCms.buildTransform(source, ImageCms.createProfile("sRGB"), "RGB", "RGB")
    except (ImageCms.PyCMSError, OSError) as error:
        raise ValueError(f"the embedded ICC profile cannot be converted to sRGB ({error})") from None


def _trilinear(lut: np.ndarray, clipped: np.ndarray, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """
    Look (H, W, 3) float pixels in [0, 1] up in an (N, N, N, 3) table over [0, 1]^3, trilinearly. Returns the
    (H, W, 3) result and an (H, W) mask of pixels whose cell has a clipped node (`clipped`: (N, N, N) bool),
    where interpolating across the gamut's edge would be wrong.
    """
    nodes = lut.shape[0]
    position = np.clip(pixels, 0.0, 1.0) * (nodes - 1)
    low = np.minimum(position.astype(np.int64), nodes - 2)
    weight = (position - low).astype(np.float32)
    result = np.zeros(pixels.shape, dtype=np.float32)
    near_edge = np.zeros(pixels.shape[:2], dtype=bool)
    for corner in range(8):
        offsets = [(corner >> axis) & 1 for axis in range(3)]
        corner_weight = np.ones(pixels.shape[:2], dtype=np.float32)
        for axis, offset in enumerate(offsets):
            corner_weight *= weight[..., axis] if offset else 1.0 - weight[..., axis]
        index = (low[..., 0] + offsets[0], low[..., 1] + offsets[1], low[..., 2] + offsets[2])
        result += corner_weight[..., None] * lut[index]
        near_edge |= clipped[index]
    return result / EIGHT_BIT_MAX if lut.dtype == np.uint8 else result, near_edge


def _convert_sixteen_bit(transform, pixels: np.ndarray) -> np.ndarray:
    """16-bit colour through the LittleCMS-built table; cells at the gamut's edge take LittleCMS's own 8-bit result."""
    from PIL import Image

    nodes = np.arange(0, EIGHT_BIT_MAX + 1, LUT_STEP, dtype=np.uint8)
    grid = np.stack(np.meshgrid(nodes, nodes, nodes, indexing="ij"), axis=-1).reshape(LUT_NODES * LUT_NODES, LUT_NODES, 3)
    table = np.asarray(transform.apply(Image.fromarray(grid))).reshape(LUT_NODES, LUT_NODES, LUT_NODES, 3)
    clipped = ((table == 0) | (table == EIGHT_BIT_MAX)).any(axis=-1)
    lut = table
    converted = np.empty_like(pixels)
    for start in range(0, pixels.shape[0], ROWS_PER_CHUNK):
        chunk = pixels[start:start + ROWS_PER_CHUNK]
        smooth, near_edge = _trilinear(lut, clipped, chunk)
        if near_edge.any():
            direct = np.asarray(transform.apply(Image.fromarray(quantize(chunk, 8))), dtype=np.float32) / EIGHT_BIT_MAX
            smooth[near_edge] = direct[near_edge]
        converted[start:start + ROWS_PER_CHUNK] = smooth
    return converted


def to_srgb(image: DecodedImage, metadata: ImageMetadata) -> tuple[DecodedImage, ImageMetadata]:
    """`image` converted from `metadata.icc_profile` to sRGB, and the metadata with the sRGB profile."""
    if not metadata.icc_profile or image.grayscale:
        return image, metadata
    from PIL import Image

    transform = _transform(metadata.icc_profile)
    if image.bit_depth == 16:
        pixels = _convert_sixteen_bit(transform, image.pixels)
    else:
        converted = transform.apply(Image.fromarray(quantize(image.pixels, 8)))
        pixels = np.asarray(converted, dtype=np.float32) / EIGHT_BIT_MAX
    return replace(image, pixels=np.ascontiguousarray(pixels)), replace(metadata, icc_profile=srgb_profile_bytes())


__all__ = ["srgb_profile_bytes", "to_srgb"]
