"""What a photo carries besides its pixels (EXIF, XMP, IPTC, ICC profile), read from a source and made
right for an output.

An `ImageMetadata` travels with the pixels in `DecodedImage.metadata`: read here from a PIL image (or
from a RAW file by `cliplit.imaging.raw`), written by `cliplit.imaging.formats`. For an output the
EXIF is rebuilt by Pillow (`exif_for_output`): the orientation is reset to 1 (the pixels are upright),
the embedded thumbnail (IFD1) is dropped, the pixel dimensions are the output's, and the tags that
describe the source file's layout (strips, tiles, compression, DNG tags) are left out.
"""

from __future__ import annotations

import re
import struct
import warnings
from dataclasses import dataclass, replace

from PIL import ExifTags, Image

EXIF_PREFIX = b"Exif\x00\x00"
ORIENTATION_TAG = 0x0112
UPRIGHT = 1
PIXEL_X_DIMENSION_TAG = 0xA002
PIXEL_Y_DIMENSION_TAG = 0xA003
XMP_TAG = 700  # TIFF tag holding the XMP packet
IPTC_TAG = 33723  # TIFF tag holding IPTC-IIM records
PHOTOSHOP_IPTC_RESOURCE = 0x0404  # the IPTC-IIM block in a JPEG's Photoshop (APP13) resources
XMP_INFO_KEYS = ("xmp", "XML:com.adobe.xmp")  # JPEG/WebP/AVIF/HEIF, PNG
# The first IFD's tags that describe the photo (not the file's layout): kept in every output.
DESCRIPTIVE_IFD0_TAGS = frozenset({
    0x010E, 0x010F, 0x0110, 0x0112, 0x011A, 0x011B, 0x0128, 0x0131, 0x0132, 0x013B, 0x013C, 0x013E, 0x013F,
    0x0211, 0x8298, 0x4746, 0x4749, 0x9C9B, 0x9C9C, 0x9C9D, 0x9C9E, 0x9C9F, ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo,
})
XMP_ORIENTATION_PATTERNS = (
    re.compile(rb'(tiff:Orientation=")[0-9](")'),
    re.compile(rb"(<tiff:Orientation>)[0-9](</tiff:Orientation>)"),
)


@dataclass(frozen=True)
class ImageMetadata:
    """
    A source's metadata, as bytes.

    Attributes:
        format: the source's format as Pillow names it ("JPEG", "PNG", "TIFF", "WEBP", "AVIF", "HEIF") or
            "RAW"; None for images that were never a file.
        exif: the EXIF block (b"Exif\\0\\0" + TIFF header + IFDs, as `PIL.Image.Exif.tobytes` gives), or None.
        xmp: the XMP packet (UTF-8 XML), or None.
        iptc: the IPTC-IIM records, or None.
        icc_profile: the ICC profile the pixels are encoded in, or None (untagged, taken as sRGB).
    """

    format: str | None = None
    exif: bytes | None = None
    xmp: bytes | None = None
    iptc: bytes | None = None
    icc_profile: bytes | None = None

    def stripped(self) -> ImageMetadata:
        """Without EXIF, XMP and IPTC (`--strip-metadata`); the colour profile stays, as it is part of the pixels' meaning."""
        return replace(self, exif=None, xmp=None, iptc=None)


def _as_bytes(value) -> bytes | None:
    if isinstance(value, str):
        value = value.encode("utf-8")
    return bytes(value) if isinstance(value, (bytes, bytearray)) and value else None


def _exif_bytes(exif: Image.Exif) -> bytes | None:
    try:
        return exif.tobytes() if len(exif) else None
    except (struct.error, ValueError, TypeError, KeyError, OSError):  # tags Pillow cannot write back: not carried
        return None


def read_pil_metadata(image: Image.Image) -> ImageMetadata:
    """The metadata of an opened PIL image, as found in its file (before any orientation is applied)."""
    info = image.info
    with warnings.catch_warnings():  # Pillow warns of corrupt EXIF; such EXIF is simply not carried
        warnings.simplefilter("ignore")
        exif = image.getexif()
        exif_bytes = _exif_bytes(exif)
    xmp = next((_as_bytes(info[key]) for key in XMP_INFO_KEYS if key in info), None)
    iptc = None
    if isinstance(info.get("photoshop"), dict):
        iptc = _as_bytes(info["photoshop"].get(PHOTOSHOP_IPTC_RESOURCE))
    tags = getattr(image, "tag_v2", None)  # TIFF: XMP and IPTC are tags of the first IFD
    if tags is not None:
        xmp = xmp or _as_bytes(tags.get(XMP_TAG))
        iptc = iptc or _as_bytes(tags.get(IPTC_TAG))
    return ImageMetadata(format=image.format, exif=exif_bytes, xmp=xmp, iptc=iptc, icc_profile=_as_bytes(info.get("icc_profile")))


def output_exif(exif_bytes: bytes | None, size: tuple[int, int]) -> Image.Exif | None:
    """
    The EXIF to write with an upright image of `size` (width, height): descriptive first-IFD tags, the Exif
    and GPS IFDs; orientation 1; the Exif IFD's pixel dimensions set to `size`; no thumbnail (IFD1).
    """
    if not exif_bytes:
        return None
    source = Image.Exif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            source.load(exif_bytes)
            source.get_ifd(ExifTags.IFD.Exif), source.get_ifd(ExifTags.IFD.GPSInfo)  # parsed now: errors surface here
    except (struct.error, ValueError, TypeError, KeyError, OSError, SyntaxError):
        return None  # an EXIF block Pillow cannot parse is not carried (the pixels still are)
    exif = Image.Exif()
    for tag, value in source.items():
        if tag in DESCRIPTIVE_IFD0_TAGS and tag not in (ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo):
            exif[tag] = value
    exif[ORIENTATION_TAG] = UPRIGHT
    for pointer in (ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo):
        tags = dict(source.get_ifd(pointer)) if pointer in source else {}
        if pointer == ExifTags.IFD.Exif:
            tags.pop(ExifTags.IFD.Interop, None)  # offsets into the source file
            tags[PIXEL_X_DIMENSION_TAG], tags[PIXEL_Y_DIMENSION_TAG] = size
        if tags:
            exif[pointer] = tags  # a dict: `tobytes` writes it as the IFD the pointer points to
    return exif


def exif_for_output(exif_bytes: bytes | None, size: tuple[int, int]) -> bytes | None:
    """`output_exif` serialized (b"Exif\\0\\0" + TIFF block), or None when the source had no EXIF."""
    exif = output_exif(exif_bytes, size)
    return exif.tobytes() if exif is not None else None


def xmp_for_output(xmp: bytes | None) -> bytes | None:
    """The XMP packet with its tiff:Orientation (if any) set to 1, like the EXIF."""
    if not xmp:
        return None
    for pattern in XMP_ORIENTATION_PATTERNS:
        xmp = pattern.sub(rb"\g<1>1\g<2>", xmp)
    return xmp


__all__ = ["ImageMetadata", "exif_for_output", "output_exif", "read_pil_metadata", "xmp_for_output"]
