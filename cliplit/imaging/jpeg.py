"""What a JPEG file says about how it was compressed: its quantization tables and chroma subsampling.

`cliplit.engine.denoise` uses them to remove the 8x8 blocks of the compression in the shadows before
the enhancement amplifies them: a decoded JPEG is known to lie, block by block, within half a
quantization step of the coefficients the file holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

JPEG_BLOCK = 8  # JPEG's DCT blocks are 8 x 8 pixels (of each component's own sampling grid)
LUMA_TABLE = 0  # the table index of the first component (Y) in every baseline JPEG encoder


@dataclass(frozen=True)
class JpegCompression:
    """
    The compression of a decoded JPEG, in the decoded image's pixel grid.

    Attributes:
        luma_table: (8, 8) float32 quantization steps of the luma DCT coefficients, in 8-bit levels,
            row = vertical frequency, column = horizontal frequency (natural order).
    """

    luma_table: np.ndarray


def jpeg_compression(image) -> JpegCompression | None:
    """
    The quantization of a PIL image decoded from a JPEG file (an open `JpegImageFile`, before any
    transpose), or None for any other image, a JPEG without tables, or one that is not YCbCr.
    """
    tables = getattr(image, "quantization", None)
    if getattr(image, "format", None) != "JPEG" or not tables or LUMA_TABLE not in tables:
        return None
    if image.mode not in ("RGB", "L"):  # CMYK / YCCK JPEGs: other component layouts
        return None
    luma = np.asarray(tables[LUMA_TABLE], dtype=np.float32)
    if luma.size != JPEG_BLOCK * JPEG_BLOCK or not (luma > 0).all():
        return None
    return JpegCompression(luma.reshape(JPEG_BLOCK, JPEG_BLOCK))


__all__ = ["JPEG_BLOCK", "JpegCompression", "jpeg_compression"]
