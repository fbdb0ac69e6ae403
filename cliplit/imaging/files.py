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
from ..safety.native_lines import without_native_lines
from ..safety.outputs import atomic_write
from ..safety.reading import NotARegularFileError, require_regular_file
from .codec import EIGHT_BIT_MAX, DecodedImage, decode_array, decode_pil, orient
from .formats import (
    FORMAT_SUFFIXES,
    HEIF_EXTENSIONS,
    OPENCV_LINE_PREFIXES,
    OutputOptions,
    format_of_path,
    heif_plugin_error,
    input_extensions,
    write_as,
)
from .metadata import orientation_of, read_pil_metadata
from .pillow_warnings import pillow_warnings_ignored
from .raw import RawSettings, is_raw, read_raw

SIXTEEN_BIT_RAWMODE_MARK = ";16"
GRAY_ALPHA_RAWMODE = "LA"  # Pillow's raw mode of a 16-bit gray + alpha PNG ("LA;16B"), held as RGBA
LOW_GRAY_BITS = (1, 2, 4)  # gray PNG bit depths below 8
COLOR_MODES = ("RGB", "RGBA")
OUTPUT_SUFFIX = ".png"
PIXELS_PER_MEGAPIXEL = 1_000_000


def image_extensions() -> set[str]:
    """File extensions (lower case, with the dot) of every format cliplit reads (Pillow's, HEIF, RAW)."""
    return input_extensions()


def _raw_modes(image: Image.Image) -> list[str]:
    """How the file stores the pixels of each of its tiles, as Pillow names it ("RGB;16B", "LA;16B", "L;2", ...)."""
    return [tile.args if isinstance(tile.args, str) else str(tile.args[0]) if tile.args else "" for tile in image.tile]


def _is_sixteen_bit_color(image: Image.Image) -> bool:
    """A 16-bit RGB(A) or gray + alpha file (Pillow holds it as 8-bit RGB(A))."""
    return image.mode in COLOR_MODES and any(SIXTEEN_BIT_RAWMODE_MARK in mode for mode in _raw_modes(image))


def _is_gray_with_alpha(image: Image.Image) -> bool:
    return any(mode.startswith(GRAY_ALPHA_RAWMODE) for mode in _raw_modes(image))


def _read_sixteen_bit_color(path: Path, orientation: int, gray_with_alpha: bool) -> DecodedImage:
    import cv2

    with without_native_lines(OPENCV_LINE_PREFIXES):  # libpng's warnings about the file's chunks (its own lines)
        array = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if array is None or array.dtype != np.uint16 or array.ndim != 3:
        raise ImageReadError(f"{display_name(path)}: cannot decode this 16-bit colour image")
    if gray_with_alpha:  # OpenCV expands gray + alpha to BGRA: B = G = R
        order = [0, 3]
    else:
        order = [2, 1, 0, 3] if array.shape[2] == 4 else [2, 1, 0]  # OpenCV holds BGR(A)
    return decode_array(orient(array[:, :, order], orientation))


def _scale_low_bit_gray_key(image: Image.Image) -> None:
    """Pillow scales 1-, 2- and 4-bit gray PNG pixels to 0-255 but not their colour key (tRNS): scale it too."""
    key = image.info.get("transparency")
    raw_modes = _raw_modes(image) if image.mode == "L" else []
    bits = next((bits for bits in LOW_GRAY_BITS for mode in raw_modes if mode.startswith(f"L;{bits}")), None)
    if isinstance(key, int) and bits is not None:
        image.info["transparency"] = key * EIGHT_BIT_MAX // (2**bits - 1)


def _read_with_pillow(path: Path, max_megapixels: float | None) -> tuple[DecodedImage, int]:
    """(the decoded image, its number of frames); Pillow's own warnings are not passed on."""
    name = display_name(path)
    try:
        with pillow_warnings_ignored(), Image.open(path) as image:
            megapixels = image.width * image.height / PIXELS_PER_MEGAPIXEL
            if max_megapixels is not None and megapixels > max_megapixels:
                raise ImageReadError(f"{name}: {image.width} x {image.height} pixels ({megapixels:.1f} MP) is over the "
                                     f"{max_megapixels:g} MP limit (--max-megapixels)")
            frames = getattr(image, "n_frames", 1)
            if _is_sixteen_bit_color(image):
                gray_with_alpha = _is_gray_with_alpha(image)  # before `orientation_of`, which may load the image
                decoded = _read_sixteen_bit_color(path, orientation_of(image), gray_with_alpha)
                decoded.metadata = read_pil_metadata(image, grayscale=decoded.grayscale)
            else:
                _scale_low_bit_gray_key(image)
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
    return decoded, frames


def read_image(path: str | os.PathLike, max_megapixels: float | None = None,
               raw_settings: RawSettings | None = None) -> DecodedImage:
    """
    Read an image file into a `DecodedImage` with its metadata and ICC profile; raises `ImageReadError`
    naming the file and the reason. `max_megapixels`: refuse larger images from their header, before
    decoding anything. `raw_settings`: how camera RAW files are rendered (default: `RawSettings()`).
    What the user should know (only the first frame is used; malformed metadata left out) is in the
    result's `note`, one line naming the file.
    """
    path = Path(path)
    name = display_name(path)
    try:
        require_regular_file(path, "image file")  # a FIFO or a device would block or never end
    except NotARegularFileError as error:
        raise ImageReadError(str(error)) from None
    if is_raw(path):
        decoded, frames = read_raw(path, max_megapixels, raw_settings), 1
    else:
        plugin_error = heif_plugin_error()
        if plugin_error and path.suffix.lower() in HEIF_EXTENSIONS:
            raise ImageReadError(f"{name}: cannot read HEIC/HEIF: {plugin_error}")
        decoded, frames = _read_with_pillow(path, max_megapixels)
    notes = []
    if frames > 1:
        notes.append(f"{frames} frames (animation or pages): only the first is enhanced")
    if decoded.metadata is not None and decoded.metadata.left_out:
        notes.append(f"malformed metadata left out: {'; '.join(decoded.metadata.left_out)}")
    if notes:
        decoded.note = f"{name}: {'; '.join(notes)}"
    return decoded


def write_image(path: str | os.PathLike, image: DecodedImage, options: OutputOptions | None = None) -> list[str]:
    """
    Write a `DecodedImage` in the format its extension names (.png, .jpg, .tif, .webp, .avif; PNG for
    others) with its source's channels, bit depth (where the format holds it), metadata and ICC profile
    (`options`: quality, --strip-metadata, --color-space), atomically: into a temporary file beside
    `path`, then renamed over it. Returns notes on metadata the encoder refused (the pixels are written
    without it), each a phrase without the file's name.
    """
    format = format_of_path(Path(path))
    with atomic_write(path, FORMAT_SUFFIXES[format]) as partial:
        notes = write_as(partial, image, format, options)
    return notes


__all__ = ["OUTPUT_SUFFIX", "image_extensions", "read_image", "write_image"]
