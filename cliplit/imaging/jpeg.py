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
# 4:2:0, as phones and Pillow save: the luma sampled 2 x 2 times as densely as each chroma component
# (PIL's `layer`: (component id, horizontal, vertical sampling factor, table index) per component)
CHROMA_SUBSAMPLING = 2


@dataclass(frozen=True)
class JpegCompression:
    """
    The compression of a decoded JPEG, in the decoded image's pixel grid (read from the file here, or
    recovered from the pixels alone by `cliplit.engine.jpeg_history`).

    Attributes:
        luma_table: (8, 8) float32 quantization steps of the luma DCT coefficients, in 8-bit levels,
            row = vertical frequency, column = horizontal frequency (natural order).
        chroma_table: the same for the two chroma components, when the file holds them at 4:2:0
            (half the luma's resolution both ways, their 8x8 blocks 16x16 pixels of the image);
            None for any other layout (4:4:4, 4:2:2, grayscale, different tables for Cb and Cr).
        origin: (row, column) of the image where the block grid starts, modulo 16 (the 16x16 grid of
            4:2:0 blocks; modulo 8 without a chroma table): (0, 0) for the image decoded from its file,
            another when the image is a crop of a decoded JPEG.
    """

    luma_table: np.ndarray
    chroma_table: np.ndarray | None = None
    origin: tuple[int, int] = (0, 0)


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
    luma = _table(tables[LUMA_TABLE])
    if luma is None:
        return None
    return JpegCompression(luma, _subsampled_chroma_table(image, tables))


def _table(values) -> np.ndarray | None:
    table = np.asarray(values, dtype=np.float32)
    if table.size != JPEG_BLOCK * JPEG_BLOCK or not (table > 0).all():
        return None
    return table.reshape(JPEG_BLOCK, JPEG_BLOCK)


def _subsampled_chroma_table(image, tables) -> np.ndarray | None:
    """The chroma table of a 4:2:0 YCbCr JPEG whose Cb and Cr share it, else None."""
    layer = getattr(image, "layer", None)
    if image.mode != "RGB" or not layer or len(layer) != 3:
        return None
    (_, luma_h, luma_v, _), *chroma = layer
    if (luma_h, luma_v) != (CHROMA_SUBSAMPLING, CHROMA_SUBSAMPLING) or any((h, v) != (1, 1) for _, h, v, _ in chroma):
        return None
    indices = {index for *_, index in chroma}
    if len(indices) != 1 or next(iter(indices)) not in tables:
        return None
    return _table(tables[next(iter(indices))])


__all__ = ["CHROMA_SUBSAMPLING", "JPEG_BLOCK", "JpegCompression", "jpeg_compression"]
