"""File formats in and out: which files cliplit reads (Pillow's formats, HEIC/HEIF through pi-heif, RAW
through rawpy), and how a result is encoded as PNG, JPEG, TIFF, WebP or AVIF with its metadata.

Outputs: PNG and TIFF keep 16 bits (16-bit PNG through OpenCV, 16-bit gray + alpha PNG, which OpenCV cannot
write, through pypng; 16-bit TIFF through tifffile); JPEG,
WebP and AVIF are 8-bit formats: a 16-bit result is rounded to 8 bits (floor(x * 255 + 0.5), no
dithering). The ICC profile is embedded in every format; EXIF and XMP go into every format; IPTC-IIM
into JPEG (APP13) and TIFF, the formats that define a place for it. 8-bit TIFF is written by Pillow,
uncompressed, with the full EXIF (Exif and GPS IFDs); 16-bit TIFF by tifffile (deflate), which writes
no sub-IFDs: its EXIF tags are in the first IFD (TIFF/EP's layout) and GPS is not carried. JPEG cannot hold alpha: a
transparent result is flattened onto white. Metadata never stops the pixels: when an encoder refuses a
result with its metadata (EXIF over JPEG's 64 KB segment, a profile libpng rejects), it is written without
EXIF, XMP and IPTC, then without the ICC profile as well, and `write_as` returns a note saying so. Native
encoders' own lines on stderr are not passed on (`cliplit.safety.native_lines`). This module imports
only the standard library at import time (the CLI's `--help` reads its names).
"""

from __future__ import annotations

import functools
import importlib
import io
import os
import struct
from dataclasses import dataclass, replace
from pathlib import Path

OUTPUT_FORMATS = ("png", "jpeg", "tiff", "webp", "avif")
AUTO_FORMAT = "auto"
FORMAT_CHOICES = OUTPUT_FORMATS + (AUTO_FORMAT,)
DEFAULT_FORMAT = "png"
FORMAT_SUFFIXES = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif", "webp": ".webp", "avif": ".avif"}
SUFFIX_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".jfif": "jpeg", ".tif": "tiff",
                  ".tiff": "tiff", ".webp": "webp", ".avif": "avif"}
RAW_AUTO_FORMAT = "tiff"  # `--format auto` for a RAW: 16-bit TIFF
SIXTEEN_BIT_FORMATS = frozenset({"png", "tiff"})
LOSSY_FORMATS = frozenset({"jpeg", "webp", "avif"})
DEFAULT_QUALITY = {"jpeg": 95, "webp": 90, "avif": 90}
QUALITY_RANGE = (1, 100)
COLOR_SPACES = ("keep", "srgb")
HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".heics", ".heifs", ".hif"})
HEIF_PLUGINS = ("pi_heif", "pillow_heif")  # decode-only LGPL wheels first; pillow-heif (GPL wheels) if installed
JPEG_FLATTEN_BACKGROUND = (255, 255, 255)
APP13_MARKER = b"\xff\xed"
PHOTOSHOP_SIGNATURE = b"Photoshop 3.0\x00"
IPTC_RESOURCE_ID = 0x0404
PNG_XMP_KEY = "XML:com.adobe.xmp"
TIFF_XMP_TAG = 700
TIFF_IPTC_TAG = 33723
TIFF_DTYPES = {1: "B", 2: "s", 3: "H", 4: "I", 6: "b", 7: "B", 8: "h", 9: "i", 11: "f", 12: "d"}
PNG_METADATA_CHUNKS = (b"iCCP", b"eXIf", b"iTXt")  # the chunks Pillow writes for an ICC profile, EXIF and XMP
GRAY_ALPHA_CHANNELS = 2
# The lines libpng (inside OpenCV) and OpenCV's logger print themselves; an empty line ends OpenCV's error messages.
OPENCV_LINE_PREFIXES = (b"libpng ", b"[ERROR:", b"[ WARN:", b"[ INFO:", b"[DEBUG:", b"\n")
TIFF_LAYOUT_TAGS = frozenset({0x011A, 0x011B, 0x0128, 0x0112, 0x0131, 0x0132, 0xA002, 0xA003})  # tifffile writes (or the TIFF says) these


@dataclass(frozen=True)
class OutputOptions:
    """
    How results are written.

    Attributes:
        format: one of `FORMAT_CHOICES`; "auto" takes the input's format where cliplit can write it (a RAW
            gives a 16-bit TIFF, other formats it cannot write give PNG).
        quality: 1-100 for JPEG, WebP and AVIF (None: `DEFAULT_QUALITY`); PNG and TIFF are lossless.
        strip_metadata: write no EXIF, XMP or IPTC (the ICC profile stays: it says what the pixels mean).
        color_space: "keep" (the input's profile, embedded) or "srgb" (converted to sRGB with LittleCMS).
    """

    format: str = DEFAULT_FORMAT
    quality: int | None = None
    strip_metadata: bool = False
    color_space: str = "keep"

    def __post_init__(self):
        if self.format not in FORMAT_CHOICES:
            raise ValueError(f"format must be one of {', '.join(FORMAT_CHOICES)}, got {self.format!r}")
        if self.color_space not in COLOR_SPACES:
            raise ValueError(f"color_space must be one of {', '.join(COLOR_SPACES)}, got {self.color_space!r}")
        if self.quality is not None and not QUALITY_RANGE[0] <= self.quality <= QUALITY_RANGE[1]:
            raise ValueError(f"quality must be from {QUALITY_RANGE[0]} to {QUALITY_RANGE[1]}, got {self.quality}")

    def format_for(self, source: str | os.PathLike) -> str:
        """The output format for an input file (resolves "auto" from the input's extension)."""
        if self.format != AUTO_FORMAT:
            return self.format
        from .raw import is_raw

        if is_raw(source):
            return RAW_AUTO_FORMAT
        return SUFFIX_FORMATS.get(Path(source).suffix.lower(), DEFAULT_FORMAT)

    def suffix_for(self, source: str | os.PathLike) -> str:
        """The output file's extension for an input file ('.png', '.jpg', ...)."""
        return FORMAT_SUFFIXES[self.format_for(source)]


def format_of_path(path: str | os.PathLike) -> str:
    """The output format an output file's extension names (PNG for an unknown extension)."""
    return SUFFIX_FORMATS.get(Path(path).suffix.lower(), DEFAULT_FORMAT)


@functools.cache
def heif_plugin_error() -> str | None:
    """Register the HEIF opener with Pillow (once); the reason it failed to load, or None when it works."""
    reasons = []
    for module in HEIF_PLUGINS:
        try:
            importlib.import_module(module).register_heif_opener()
            return None
        except ModuleNotFoundError as error:
            reasons.append(f"{module}: not installed" if error.name == module else f"{module}: {error.name} not installed")
        except Exception as error:  # noqa: BLE001 - a bundled library that fails to load
            text = str(error).strip().splitlines()
            reasons.append(f"{module}: {text[0] if text else type(error).__name__}")
    return "the HEIF plugin failed to load (" + "; ".join(reasons) + "); reinstall cliplit's dependency pi-heif"


def input_extensions() -> set[str]:
    """File extensions (lower case, with the dot) of every input cliplit reads: Pillow's, HEIF's and RAW's."""
    from PIL import Image

    from .raw import RAW_EXTENSIONS

    heif_plugin_error()
    Image.init()
    pillow = {ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    return pillow | HEIF_EXTENSIONS | RAW_EXTENSIONS


# ------------------------------------------------------------------------------------------ writing
class EncoderRefused(Exception):
    """An encoder refused a result with the metadata it was given (the reason is the message)."""


def _metadata_fallbacks(metadata):
    """(metadata to write, what of it is left out or None): all of it, then without EXIF, XMP and IPTC, then
    without the ICC profile as well (only the steps that leave something out)."""
    from .metadata import ImageMetadata

    yield metadata, None
    descriptive = metadata.exif or metadata.xmp or metadata.iptc
    if descriptive:
        yield metadata.stripped(), "its EXIF, XMP and IPTC"
    if metadata.icc_profile:
        yield ImageMetadata(format=metadata.format), "its metadata and ICC profile" if descriptive else "its ICC profile"


def write_as(path: Path, image, format: str, options: OutputOptions | None = None) -> list[str]:
    """
    Encode a `DecodedImage` as `format` into `path` (not atomically: `cliplit.imaging.files.write_image`
    writes through a temporary file), with its metadata and ICC profile as `options` say. Returns notes on
    what could not be written: when the encoder refuses the metadata, the pixels are written without it.
    An encoder that refuses the pixels themselves is an `OSError` with its reason.
    """
    from .color import to_srgb
    from .metadata import ImageMetadata

    options = options or OutputOptions()
    metadata = image.metadata or ImageMetadata()
    if options.strip_metadata:
        metadata = metadata.stripped()
    if options.color_space == "srgb":
        image, metadata = to_srgb(image, metadata)
    reasons = []
    for carried, left_out in _metadata_fallbacks(metadata):
        try:
            _encode(path, image, format, options, carried)
        except EncoderRefused as error:
            reasons.append(str(error))
            continue
        if left_out is None:
            return []
        return [f"written without {left_out}: the {format.upper()} encoder refused them ({reasons[0]})"]
    raise OSError(f"cannot encode as {format}: {reasons[-1]}")


def _encode(path: Path, image, format: str, options: OutputOptions, metadata) -> None:
    from ..errors import first_line
    from .metadata import exif_for_output, xmp_for_output

    try:
        exif_bytes = exif_for_output(metadata.exif, image.size)
        xmp = xmp_for_output(metadata.xmp)
        if image.bit_depth == 16 and format == "png":
            from .codec import encode_array

            png = encode_png16(encode_array(image), exif_bytes, xmp, metadata.icc_profile)
            with open(path, "wb") as handle:  # written by Python: a full disk is one OSError with its reason
                handle.write(png)
        elif image.bit_depth == 16 and format == "tiff":
            _write_tiff16(path, image, metadata, xmp)
        else:
            _write_pil(path, image, format, options, exif_bytes, xmp, metadata)
    except (RuntimeError, TypeError, ValueError, AttributeError, KeyError, struct.error) as error:  # the encoder refused
        raise EncoderRefused(first_line(error)) from None


def _png_arguments(exif_bytes, xmp, icc) -> dict:
    """Pillow's PNG `save` arguments that write an ICC profile, EXIF and XMP (as iCCP, eXIf and iTXt chunks)."""
    from PIL import PngImagePlugin

    arguments: dict = {}
    if icc:
        arguments["icc_profile"] = icc
    if exif_bytes:
        arguments["exif"] = exif_bytes
    if xmp:
        info = PngImagePlugin.PngInfo()
        info.add_itxt(PNG_XMP_KEY, xmp.decode("utf-8", "replace"))
        arguments["pnginfo"] = info
    return arguments


def _png_metadata_chunks(exif_bytes, xmp, icc) -> list[tuple[bytes, bytes]]:
    """The iCCP, eXIf and iTXt chunks that Pillow writes for this metadata (as in every 8-bit PNG output)."""
    import png
    from PIL import Image

    arguments = _png_arguments(exif_bytes, xmp, icc)
    if not arguments:
        return []
    donor = io.BytesIO()
    Image.new("L", (1, 1)).save(donor, format="PNG", **arguments)
    return [(kind, data) for kind, data in png.Reader(bytes=donor.getvalue()).chunks() if kind in PNG_METADATA_CHUNKS]


def _gray_alpha_png16(array, exif_bytes, xmp, icc) -> bytes:
    """An (H, W, 2) uint16 gray + alpha array as PNG bytes (pypng: OpenCV writes 1, 3 or 4 channels only)."""
    import numpy as np
    import png

    height, width = array.shape[:2]
    rows = array.astype(">u2").reshape(height, -1).view(np.uint8)
    pixels = io.BytesIO()
    png.Writer(width, height, greyscale=True, alpha=True, bitdepth=16).write_packed(pixels, (row.tobytes() for row in rows))
    chunks = list(png.Reader(bytes=pixels.getvalue()).chunks())
    chunks[1:1] = _png_metadata_chunks(exif_bytes, xmp, icc)  # after IHDR, before the pixels
    out = io.BytesIO()
    png.write_chunks(out, chunks)
    return out.getvalue()


def encode_png16(array, exif_bytes: bytes | None = None, xmp: bytes | None = None, icc: bytes | None = None) -> bytes:
    """
    A uint16 (H, W) or (H, W, C) array (C = 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA) as 16-bit PNG bytes, with
    EXIF (b"Exif\\0\\0" + TIFF block), XMP and an ICC profile. Raises `RuntimeError` when the encoder refuses.
    """
    import cv2
    import numpy as np

    from ..safety.native_lines import without_native_lines
    from .metadata import EXIF_PREFIX

    if array.ndim == 3 and array.shape[2] == GRAY_ALPHA_CHANNELS:
        return _gray_alpha_png16(array, exif_bytes, xmp, icc)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 3:
        array = array[:, :, [2, 1, 0, 3] if array.shape[2] == 4 else [2, 1, 0]]  # OpenCV holds BGR(A)
    kinds, values = [], []
    for kind, data in ((cv2.IMAGE_METADATA_EXIF, exif_bytes and exif_bytes.removeprefix(EXIF_PREFIX)),
                       (cv2.IMAGE_METADATA_XMP, xmp), (cv2.IMAGE_METADATA_ICCP, icc)):
        if data:
            kinds.append(kind)
            values.append(np.frombuffer(data, np.uint8))
    if not hasattr(cv2, "imencodeWithMetadata"):
        raise RuntimeError(f"16-bit PNG with metadata needs OpenCV 4.12 or newer (this is {cv2.__version__})")
    with without_native_lines(OPENCV_LINE_PREFIXES):  # libpng's and OpenCV's own lines: the reason is ours
        try:
            encoded, png = cv2.imencodeWithMetadata(".png", np.ascontiguousarray(array), kinds, values)
        except cv2.error:
            encoded = False
    if not encoded:
        raise RuntimeError("OpenCV could not encode the 16-bit image" + (" with its metadata" if kinds else ""))
    return png.tobytes()


def _tiff_tag(tag: int, value):
    """An EXIF tag as a tifffile `extratags` entry, or None for a value tifffile cannot write."""
    from PIL import TiffTags
    from PIL.TiffImagePlugin import IFDRational

    if isinstance(value, str):
        return (tag, "s", 0, value, True)
    if isinstance(value, bytes):
        return (tag, 7, len(value), value, True)
    values = value if isinstance(value, tuple) else (value,)
    if values and all(isinstance(v, IFDRational) for v in values):
        signed = any(v.numerator < 0 for v in values)
        flat = [part for v in values for part in (int(v.numerator), int(v.denominator))]
        return (tag, 10 if signed else 5, len(values), flat, True)
    if values and all(isinstance(v, int) for v in values):
        known = TiffTags.lookup(tag).type
        dtype = known if known in TIFF_DTYPES and known not in (2, 7) else 4
        if dtype in (3, 1) and any(v < 0 or v > (255 if dtype == 1 else 65535) for v in values):
            dtype = 4
        return (tag, dtype, len(values), list(values), True)
    return None


def _write_tiff16(path: Path, image, metadata, xmp) -> None:
    """16-bit TIFF (deflate): the ICC profile, XMP and IPTC tags, and the EXIF tags in the first IFD (TIFF/EP's
    layout: tifffile writes no Exif or GPS sub-IFD, so the GPS tags are not carried in 16-bit TIFF)."""
    import tifffile
    from PIL import ExifTags

    from .codec import encode_array
    from .metadata import output_exif

    extratags = []
    exif = output_exif(metadata.exif, image.size)
    if exif is not None:
        tags = {tag: value for tag, value in exif.items() if not isinstance(value, dict)}
        exif_ifd = exif.get(ExifTags.IFD.Exif)
        if isinstance(exif_ifd, dict):
            tags.update({tag: value for tag, value in exif_ifd.items() if tag not in (0x927C,)})  # MakerNote: offsets
        for tag in sorted(set(tags) - TIFF_LAYOUT_TAGS):
            entry = _tiff_tag(tag, tags[tag])
            if entry is not None:
                extratags.append(entry)
    if xmp:
        extratags.append((TIFF_XMP_TAG, 1, len(xmp), xmp, True))
    if metadata.iptc:
        extratags.append((TIFF_IPTC_TAG, 7, len(metadata.iptc), metadata.iptc, True))
    array = encode_array(image)
    tifffile.imwrite(path, array, photometric="minisblack" if image.grayscale else "rgb",
                     extrasamples=("unassalpha",) if image.alpha is not None else None, compression="zlib",
                     iccprofile=metadata.icc_profile, extratags=extratags, metadata=None, software=False)


def _photoshop_iptc_segment(iptc: bytes) -> bytes:
    """A JPEG APP13 segment holding `iptc` as the Photoshop IPTC-IIM resource (how JPEGs carry IPTC)."""
    padded = iptc + (b"\x00" if len(iptc) % 2 else b"")
    resource = b"8BIM" + struct.pack(">H", IPTC_RESOURCE_ID) + b"\x00\x00" + struct.pack(">I", len(iptc)) + padded
    body = PHOTOSHOP_SIGNATURE + resource
    return APP13_MARKER + struct.pack(">H", len(body) + 2) + body


def _write_pil(path: Path, image, format: str, options: OutputOptions, exif_bytes, xmp, metadata) -> None:
    from PIL import Image, TiffImagePlugin, TiffTags

    from .codec import encode_pil
    from .metadata import output_exif

    pil = encode_pil(replace(image, bit_depth=8, metadata=None))  # 16-bit results reach here only for 8-bit formats
    quality = options.quality or DEFAULT_QUALITY.get(format)
    icc = metadata.icc_profile
    arguments: dict = {}
    if icc:
        arguments["icc_profile"] = icc
    if exif_bytes:
        arguments["exif"] = exif_bytes
    if format == "png":
        pil.save(path, format="PNG", **_png_arguments(exif_bytes, xmp, icc))
    elif format == "jpeg":
        if pil.mode in ("RGBA", "LA"):
            flat = Image.new("RGB" if pil.mode == "RGBA" else "L", pil.size,
                             JPEG_FLATTEN_BACKGROUND if pil.mode == "RGBA" else JPEG_FLATTEN_BACKGROUND[0])
            flat.paste(pil, mask=pil.getchannel("A"))
            pil = flat
        if xmp:
            arguments["xmp"] = xmp
        if metadata.iptc:
            arguments["extra"] = _photoshop_iptc_segment(metadata.iptc)
        pil.save(path, format="JPEG", quality=quality, subsampling=0, **arguments)
    elif format == "tiff":  # EXIF (with its Exif and GPS IFDs), XMP and IPTC are tags of the TIFF's first IFD
        tiffinfo = TiffImagePlugin.ImageFileDirectory_v2()
        exif = output_exif(metadata.exif, pil.size)
        for tag, value in (exif.items() if exif is not None else ()):
            tiffinfo[tag] = value
        for tag, data in ((TIFF_XMP_TAG, xmp), (TIFF_IPTC_TAG, metadata.iptc)):
            if data:
                tiffinfo[tag] = data
                tiffinfo.tagtype[tag] = TiffTags.BYTE if tag == TIFF_XMP_TAG else TiffTags.UNDEFINED
        arguments.pop("exif", None)
        pil.save(path, format="TIFF", tiffinfo=tiffinfo, **arguments)  # uncompressed: libtiff's codecs drop sub-IFDs
    elif format in ("webp", "avif"):
        if xmp:
            arguments["xmp"] = xmp
        extra = {"subsampling": "4:4:4"} if format == "avif" else {}
        pil.save(path, format=format.upper(), quality=quality, **extra, **arguments)
    else:
        raise ValueError(f"unknown output format {format!r}")


__all__ = [
    "DEFAULT_FORMAT",
    "FORMAT_CHOICES",
    "OUTPUT_FORMATS",
    "EncoderRefused",
    "OutputOptions",
    "encode_png16",
    "format_of_path",
    "heif_plugin_error",
    "input_extensions",
    "write_as",
]
