"""What a photo carries besides its pixels (EXIF, XMP, IPTC, ICC profile), read from a source and made
right for an output.

An `ImageMetadata` travels with the pixels in `DecodedImage.metadata`: read here from a PIL image (or
from a RAW file by `cliplit.imaging.raw`), written by `cliplit.imaging.formats`. For an output the
EXIF is rebuilt by Pillow (`exif_for_output`): the orientation is reset to 1 (the pixels are upright),
the embedded thumbnail (IFD1) is dropped, the pixel dimensions are the output's, and the tags that
describe the source file's layout (strips, tiles, compression, DNG tags) are left out.

Malformed metadata never stops the pixels. What a source holds that cannot be carried is left out
when it is read, and named in `ImageMetadata.left_out` (the readers turn it into a `note:` naming the
file): an EXIF tag whose value Pillow cannot write back as its type (a RATIONAL where EXIF defines text,
as in a `Make` or `GPSLatitudeRef` written by a broken tool) is dropped, the other tags are kept; an
EXIF block Pillow cannot parse at all is dropped whole; an ICC profile LittleCMS cannot read, or one
for another colour model than the image's (a gray profile on RGB pixels), is dropped, so the pixels
are taken as sRGB (or plain gray).
"""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass, replace

from PIL import ExifTags, Image

from ..errors import first_line
from .pillow_warnings import pillow_warnings_ignored

EXIF_PREFIX = b"Exif\x00\x00"
TIFF_HEADER_BYTES = 8  # byte order, 42, the offset of the first IFD
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
EXIF_SUB_IFDS = (ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo)  # carried with the first IFD (not IFD1, the thumbnail)
OFFSET_TAGS = frozenset({ExifTags.IFD.Interop})  # pointers into the source file: meaningless in another file
CONVERTED_COLOR_MODES = ("CMYK", "YCbCr", "LAB", "HSV")  # PIL modes read as RGB
ICC_COLOR_SPACES = {False: "RGB", True: "GRAY"}  # grayscale -> the colour space an ICC profile must describe
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
        left_out: what the source held that is not carried because it is malformed, one phrase each
            (e.g. "EXIF tag Make (a value of the wrong type)"); empty when everything is carried.
    """

    format: str | None = None
    exif: bytes | None = None
    xmp: bytes | None = None
    iptc: bytes | None = None
    icc_profile: bytes | None = None
    left_out: tuple[str, ...] = ()

    def stripped(self) -> ImageMetadata:
        """Without EXIF, XMP and IPTC (`--strip-metadata`); the colour profile stays, as it is part of the pixels' meaning."""
        return replace(self, exif=None, xmp=None, iptc=None)


def _as_bytes(value) -> bytes | None:
    if isinstance(value, str):
        value = value.encode("utf-8")
    return bytes(value) if isinstance(value, (bytes, bytearray)) and value else None


def _tag_name(tag: int, group: int | None) -> str:
    names = ExifTags.GPSTAGS if group == ExifTags.IFD.GPSInfo else ExifTags.TAGS
    return names.get(tag, f"0x{tag:04X}")


def _writable(tag: int, value, group: int | None) -> bool:
    """Whether Pillow writes `value` back as EXIF tag `tag` of IFD `group` (None: the first IFD)."""
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    directory = ImageFileDirectory_v2(group=group)
    try:
        directory[tag] = value
        directory.tobytes()
    except Exception:  # noqa: BLE001 - Pillow's writers raise many types for a value of the wrong type
        return False
    return True


def writable_exif(exif: Image.Exif) -> tuple[bytes | None, list[str]]:
    """
    The EXIF block to carry (b"Exif\\0\\0" + TIFF block: the first IFD, the Exif and GPS IFDs) and what of
    it is left out: each tag whose value Pillow cannot write back as that tag is dropped and named; an
    IFD Pillow cannot parse is dropped whole. The thumbnail (IFD1) and the Interop pointer are not carried.
    """
    carried, wrong_type, left_out = Image.Exif(), [], []

    def keep(tags, group):
        kept = {}
        for tag, value in tags.items():
            if tag in OFFSET_TAGS or (group is None and tag in EXIF_SUB_IFDS):
                continue
            if _writable(tag, value, group):
                kept[tag] = value
            else:
                wrong_type.append(_tag_name(tag, group))
        return kept

    try:
        with pillow_warnings_ignored():  # Pillow warns of corrupt EXIF; what it cannot read is named below
            first = dict(exif.items())
            for tag, value in keep(first, None).items():
                carried[tag] = value
            for pointer in EXIF_SUB_IFDS:
                if pointer not in first:
                    continue
                try:
                    tags = keep(first[pointer] if isinstance(first[pointer], dict) else exif.get_ifd(pointer), pointer)
                except Exception as error:  # noqa: BLE001 - a damaged sub-IFD: Pillow raises many types
                    left_out.append(f"the EXIF {ExifTags.TAGS.get(pointer, pointer)} block (unreadable: {first_line(error)})")
                    continue
                if tags:
                    carried[pointer] = tags
            if wrong_type:
                plural = len(wrong_type) > 1
                left_out.insert(0, f"EXIF tag{'s' if plural else ''} {', '.join(wrong_type)} "
                                   f"({'values' if plural else 'a value'} of the wrong type)")
            return (carried.tobytes() if len(carried) else None), left_out
    except Exception as error:  # noqa: BLE001 - an EXIF block Pillow cannot parse or write: not carried
        return None, [f"the EXIF block (unreadable: {first_line(error)})"]


def icc_problem(icc_profile: bytes, grayscale: bool) -> str | None:
    """Why an ICC profile cannot describe these pixels (LittleCMS cannot read it, it is for another colour
    model than RGB or gray, as `grayscale` says, or it lacks what a conversion to sRGB needs), or None."""
    from PIL import ImageCms

    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        space = profile.profile.xcolor_space.strip()
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as error:
        return f"unreadable: {first_line(error)}"
    expected = ICC_COLOR_SPACES[grayscale]
    if space != expected:
        return f"a {space or 'unknown'} profile for {expected} pixels"
    try:  # what a colour-managed viewer (and `--color-space srgb`) does with it
        ImageCms.buildTransform(profile, ImageCms.createProfile("sRGB"), "L" if grayscale else "RGB", "RGB")
    except (ImageCms.PyCMSError, OSError, ValueError) as error:
        return f"incomplete: LittleCMS {first_line(error)}"
    return None


def checked_icc_profile(icc_profile: bytes | None, grayscale: bool) -> tuple[bytes | None, list[str]]:
    """(the profile, nothing left out) when it describes these pixels, else (None, [why it is left out])."""
    if not icc_profile:
        return None, []
    problem = icc_problem(icc_profile, grayscale)
    return (icc_profile, []) if problem is None else (None, [f"the ICC profile ({problem})"])


def _is_empty_exif(block: bytes) -> bool:
    """Whether an EXIF block is well formed and holds no tag: a TIFF header whose first IFD has 0 entries (as
    Pillow writes an empty `Image.Exif`)."""
    tiff = block.removeprefix(EXIF_PREFIX)
    order = {b"II*\0": "<", b"MM\0*": ">"}.get(tiff[:4])
    if order is None or len(tiff) < TIFF_HEADER_BYTES:
        return False
    (first_ifd,) = struct.unpack(order + "I", tiff[4:8])
    return first_ifd + 2 <= len(tiff) and struct.unpack(order + "H", tiff[first_ifd : first_ifd + 2])[0] == 0


def read_pil_metadata(image: Image.Image, grayscale: bool) -> ImageMetadata:
    """
    The metadata of an opened PIL image, as found in its file (before any orientation is applied), with what
    is malformed left out and named (`ImageMetadata.left_out`). `grayscale`: whether the pixels are read as
    gray, which the ICC profile must describe. The profile of a CMYK, YCbCr, LAB or HSV image describes
    values that the reader converts to RGB: it is not carried.
    """
    info = image.info
    try:
        with pillow_warnings_ignored():  # Pillow warns of corrupt EXIF; what it cannot read is named
            exif = image.getexif()
        exif_bytes, left_out = writable_exif(exif) if len(exif) else (None, [])
        if not len(exif) and info.get("exif") and not _is_empty_exif(_as_bytes(info["exif"])):  # garbage, a broken IFD
            left_out = ["the EXIF block (unreadable: no tag could be read from it)"]
    except Exception as error:  # noqa: BLE001 - an EXIF block Pillow cannot parse: not carried
        exif_bytes, left_out = None, [f"the EXIF block (unreadable: {first_line(error)})"]
    xmp = next((_as_bytes(info[key]) for key in XMP_INFO_KEYS if key in info), None)
    iptc = None
    if isinstance(info.get("photoshop"), dict):
        iptc = _as_bytes(info["photoshop"].get(PHOTOSHOP_IPTC_RESOURCE))
    tags = getattr(image, "tag_v2", None)  # TIFF: XMP and IPTC are tags of the first IFD
    if tags is not None:
        xmp = xmp or _as_bytes(tags.get(XMP_TAG))
        iptc = iptc or _as_bytes(tags.get(IPTC_TAG))
    icc_profile = _as_bytes(info.get("icc_profile")) if image.mode not in CONVERTED_COLOR_MODES else None
    icc_profile, icc_left_out = checked_icc_profile(icc_profile, grayscale)
    return ImageMetadata(format=image.format, exif=exif_bytes, xmp=xmp, iptc=iptc, icc_profile=icc_profile,
                         left_out=tuple(left_out + icc_left_out))


def orientation_of(image: Image.Image) -> int:
    """The EXIF orientation of a PIL image (1-8); 1 (upright) when it has none, an invalid one, or EXIF that
    cannot be read."""
    try:
        with pillow_warnings_ignored():
            value = image.getexif().get(ORIENTATION_TAG, UPRIGHT)
    except Exception:  # noqa: BLE001 - EXIF Pillow cannot parse: the pixels are taken as stored
        return UPRIGHT
    return value if isinstance(value, int) and 1 <= value <= 8 else UPRIGHT


def output_exif(exif_bytes: bytes | None, size: tuple[int, int]) -> Image.Exif | None:
    """
    The EXIF to write with an upright image of `size` (width, height): descriptive first-IFD tags, the Exif
    and GPS IFDs; orientation 1; the Exif IFD's pixel dimensions set to `size`; no thumbnail (IFD1).
    """
    if not exif_bytes:
        return None
    source = Image.Exif()
    try:
        with pillow_warnings_ignored():
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


__all__ = ["ImageMetadata", "checked_icc_profile", "exif_for_output", "icc_problem", "orientation_of", "output_exif", "read_pil_metadata",
           "writable_exif", "xmp_for_output"]
