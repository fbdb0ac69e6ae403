"""Reading and writing image files without losing what the user gave: 16-bit colour, alpha, orientation,
metadata and colour profile.

Pillow reads most formats (HEIC/HEIF through the pi-heif plugin) but truncates 16-bit colour PNG/TIFF
to 8 bits; those are decoded by OpenCV (imported only for them). Camera RAW files are decoded by rawpy
(`cliplit.imaging.raw`); outputs are encoded by `cliplit.imaging.formats`. Every read failure is an
`ImageReadError` whose message names the file and the reason. Outputs are written to a temporary file in the target's folder and
then renamed, so an interrupted run never leaves a partial file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ImageReadError, display_name
from ..safety.outputs import atomic_write
from ..safety.reading import NotARegularFileError, require_regular_file
from .codec import DecodedImage, decode_array, decode_pil
from .formats import (
    FORMAT_SUFFIXES,
    HEIF_EXTENSIONS,
    OutputOptions,
    format_of_path,
    heif_plugin_error,
    input_extensions,
    write_as,
)
from .metadata import read_pil_metadata
from .raw import RawSettings, is_raw, read_raw

EXIF_ORIENTATION_TAG = 0x0112
SIXTEEN_BIT_RAWMODE_MARK = ";16"
COLOR_MODES = ("RGB", "RGBA")
OUTPUT_SUFFIX = ".png"
PIXELS_PER_MEGAPIXEL = 1_000_000


def image_extensions() -> set[str]:
    """File extensions (lower case, with the dot) of every format cliplit reads (Pillow's, HEIF, RAW)."""
    return input_extensions()


def _orient(array: np.ndarray, orientation: int | None) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an (H, W, C) array, as PIL's `exif_transpose` does."""
    transforms = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    transform = transforms.get(orientation or 1)
    return np.ascontiguousarray(transform(array)) if transform else array


def _is_sixteen_bit_color(image: Image.Image) -> bool:
    return image.mode in COLOR_MODES and any(SIXTEEN_BIT_RAWMODE_MARK in str(tile.args) for tile in image.tile)


def _read_sixteen_bit_color(path: Path, orientation: int | None) -> DecodedImage:
    import cv2

    array = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if array is None or array.dtype != np.uint16 or array.ndim != 3:
        raise ImageReadError(f"{display_name(path)}: cannot decode this 16-bit colour image")
    order = [2, 1, 0, 3] if array.shape[2] == 4 else [2, 1, 0]  # OpenCV holds BGR(A)
    return decode_array(_orient(array[:, :, order], orientation))


def read_image(path: str | os.PathLike, max_megapixels: float | None = None,
               raw_settings: RawSettings | None = None) -> DecodedImage:
    """
    Read an image file into a `DecodedImage` with its metadata and ICC profile; raises `ImageReadError`
    naming the file and the reason. `max_megapixels`: refuse larger images from their header, before
    decoding anything. `raw_settings`: how camera RAW files are rendered (default: `RawSettings()`).
    """
    path = Path(path)
    name = display_name(path)
    try:
        require_regular_file(path, "image file")  # a FIFO or a device would block or never end
    except NotARegularFileError as error:
        raise ImageReadError(str(error)) from None
    if is_raw(path):
        return read_raw(path, max_megapixels, raw_settings)
    plugin_error = heif_plugin_error()
    if plugin_error and path.suffix.lower() in HEIF_EXTENSIONS:
        raise ImageReadError(f"{name}: cannot read HEIC/HEIF: {plugin_error}")
    try:
        with Image.open(path) as image:
            megapixels = image.width * image.height / PIXELS_PER_MEGAPIXEL
            if max_megapixels is not None and megapixels > max_megapixels:
                raise ImageReadError(f"{name}: {image.width} x {image.height} pixels ({megapixels:.1f} MP) is over the "
                                     f"{max_megapixels:g} MP limit (--max-megapixels)")
            frames = getattr(image, "n_frames", 1)
            if _is_sixteen_bit_color(image):
                decoded = _read_sixteen_bit_color(path, image.getexif().get(EXIF_ORIENTATION_TAG))
                decoded.metadata = read_pil_metadata(image)
            else:
                image.load()
                decoded = decode_pil(image)
    except Image.DecompressionBombError as error:
        raise ImageReadError(f"{name}: too large to read safely ({error})") from None
    except UnidentifiedImageError:
        if path.suffix.lower() in HEIF_EXTENSIONS:
            raise ImageReadError(f"{name}: cannot read HEIC/HEIF: truncated or corrupt data (or not a HEIF file)") from None
        raise ImageReadError(f"{name}: not an image (or a format Pillow cannot read)") from None
    except (OSError, SyntaxError, ValueError) as error:
        reason = str(error) or type(error).__name__
        if "truncated" in reason or "broken data stream" in reason:
            reason = f"truncated or corrupt image data ({reason})"
        raise ImageReadError(f"{name}: cannot read image: {reason}") from None
    if frames > 1:
        decoded.note = f"{name}: {frames} frames (animation or pages): only the first is enhanced"
    return decoded


def write_image(path: str | os.PathLike, image: DecodedImage, options: OutputOptions | None = None) -> None:
    """
    Write a `DecodedImage` in the format its extension names (.png, .jpg, .tif, .webp, .avif; PNG for
    others) with its source's channels, bit depth (where the format holds it), metadata and ICC profile
    (`options`: quality, --strip-metadata, --color-space), atomically: into a temporary file beside
    `path`, then renamed over it.
    """
    format = format_of_path(Path(path))
    with atomic_write(path, FORMAT_SUFFIXES[format]) as partial:
        write_as(partial, image, format, options)


__all__ = ["OUTPUT_SUFFIX", "image_extensions", "read_image", "write_image"]
