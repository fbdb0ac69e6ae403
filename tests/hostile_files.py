"""Hostile photos, built the way a broken tool or an attacker writes them (issue 28's red team): EXIF whose tags
hold values of the wrong type, corrupt ICC profiles, 16-bit gray + alpha and colour-keyed (tRNS) PNGs, EXIF
too large for a JPEG. Pillow refuses to write most of these, so the EXIF is assembled here byte by byte and
the PNGs with pypng. Importable from every test folder (`pythonpath = ["tests"]`).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import png
from photo_files import backlit_pixels
from PIL import Image

RATIONAL, ASCII, SHORT, LONG = 5, 2, 3, 4  # TIFF field types
MAKE, MODEL, ORIENTATION, GPS_POINTER = 0x010F, 0x0110, 0x0112, 0x8825
GPS_LATITUDE_REF, GPS_LATITUDE = 1, 2
GOOD_MODEL = "Backlit One"
GPS_LATITUDE_DEGREES = (48, 51, 29.64)
CORRUPT_ICC_PROFILE = b"\x00\x00\x01\x00not an ICC profile" * 16


def _ifd(entries: list[tuple[int, int, int, bytes]], start: int) -> bytes:
    """A little-endian IFD at offset `start` of the TIFF block: (tag, type, count, value bytes) entries, values
    over 4 bytes stored after it."""
    data_start = start + 2 + 12 * len(entries) + 4
    head, data = struct.pack("<H", len(entries)), b""
    for tag, kind, count, value in sorted(entries):
        if len(value) <= 4:
            head += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0")
        else:
            head += struct.pack("<HHII", tag, kind, count, data_start + len(data))
            data += value + b"\0" * (len(value) % 2)
    return head + struct.pack("<I", 0) + data


def exif_with_wrong_types(make_rational: bool = True, gps_ref_rational: bool = True, orientation: int = 1) -> bytes:
    """An EXIF block (b"Exif\\0\\0" + TIFF) as a broken tool writes it: Make and/or GPSLatitudeRef stored as a
    RATIONAL where EXIF defines text; Model, Orientation and the GPS latitude are well formed."""
    rational = struct.pack("<II", 3, 2)
    first = [(MAKE, RATIONAL, 1, rational) if make_rational else (MAKE, ASCII, 6, b"Canon\0"),
             (MODEL, ASCII, len(GOOD_MODEL) + 1, GOOD_MODEL.encode() + b"\0"),
             (ORIENTATION, SHORT, 1, struct.pack("<H", orientation))]
    gps_at = 8 + len(_ifd([*first, (GPS_POINTER, LONG, 1, b"\0" * 4)], 8))
    first.append((GPS_POINTER, LONG, 1, struct.pack("<I", gps_at)))
    degrees, minutes, seconds = GPS_LATITUDE_DEGREES
    gps = [(GPS_LATITUDE_REF, RATIONAL, 1, rational) if gps_ref_rational else (GPS_LATITUDE_REF, ASCII, 2, b"N\0"),
           (GPS_LATITUDE, RATIONAL, 3, struct.pack("<6I", degrees, 1, minutes, 1, round(seconds * 100), 100))]
    return b"Exif\0\0II*\0" + struct.pack("<I", 8) + _ifd(first, 8) + _ifd(gps, gps_at)


def write_jpeg_with_wrong_exif(path, size=(48, 36), **kinds) -> Path:
    """A JPEG whose EXIF holds tags of the wrong type (`exif_with_wrong_types(**kinds)`)."""
    path = Path(path)
    Image.fromarray(backlit_pixels(size[1], size[0])).save(path, quality=95, exif=exif_with_wrong_types(**kinds))
    return path


def write_png(path, array: np.ndarray, *, transparent=None, icc_profile: bytes | None = None) -> Path:
    """An (H, W[, C]) uint8 or uint16 array (C = 2: gray + alpha, 3: RGB, 4: RGBA) as a PNG of its bit depth, with
    a colour key (`transparent`: a gray value or an RGB triple, a tRNS chunk) and an iCCP chunk holding
    `icc_profile` unchecked (libpng and Pillow check nothing when they read it back; this is how a broken
    profile reaches a file)."""
    path = Path(path)
    channels = 1 if array.ndim == 2 else array.shape[2]
    writer = png.Writer(array.shape[1], array.shape[0], greyscale=channels <= 2, alpha=channels in (2, 4),
                        bitdepth=16 if array.dtype == np.uint16 else 8, transparent=transparent)
    pixels = io.BytesIO()
    writer.write(pixels, array.reshape(array.shape[0], -1).tolist())
    chunks = list(png.Reader(bytes=pixels.getvalue()).chunks())
    if icc_profile is not None:
        chunks.insert(1, (b"iCCP", b"broken\0\0" + zlib.compress(icc_profile)))
    with open(path, "wb") as handle:
        png.write_chunks(handle, chunks)
    return path


def png_layout(path) -> tuple[int, bool, bool]:
    """(bit depth, grayscale, alpha) of a PNG file, as its header says."""
    _, _, _, info = png.Reader(filename=str(path)).read()
    return info["bitdepth"], info["greyscale"], info["alpha"]


def png_values(path) -> np.ndarray:
    """A PNG's values as stored, (H, W, planes) (gray + alpha and 16-bit included, which Pillow cannot hold)."""
    width, height, rows, info = png.Reader(filename=str(path)).read()
    return np.array([list(row) for row in rows]).reshape(height, width, info["planes"])
