"""Camera RAW files (DNG, CR2/CR3, NEF, ARW, RAF, ORF, RW2, PEF, ...) decoded by LibRaw through `rawpy`.

By default a RAW is decoded exactly as `rawpy`'s `postprocess(output_bps=16, use_camera_wb=True,
no_auto_bright=True)` does: 16 bits per channel, the camera's white balance, no automatic brightening,
LibRaw's other defaults (AHD demosaicing, highlights clipped, sRGB primaries with LibRaw's BT.709 tone
curve; the result is written untagged, as rawpy users get it). `RawSettings` holds the other choices
(the `--raw-*` options). The camera's EXIF is read with ExifRead (TIFF-based RAWs: DNG, CR2, NEF, ARW,
ORF, RW2, PEF, ...) and carried into the outputs; where it cannot be read the result has none.
Only the standard library is imported at import time (the CLI's `--help` reads the choices here).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ImageReadError, display_name
from ..safety.native_lines import without_native_lines

if TYPE_CHECKING:
    from .codec import DecodedImage

RAW_FORMAT = "RAW"
RAW_EXTENSIONS = frozenset({
    ".3fr", ".ari", ".arw", ".bay", ".cr2", ".cr3", ".crw", ".dcr", ".dng", ".erf", ".fff", ".iiq", ".k25", ".kdc",
    ".mef", ".mos", ".mrw", ".nef", ".nrw", ".orf", ".pef", ".raf", ".raw", ".rw2", ".rwl", ".sr2", ".srf", ".srw", ".x3f",
})
WHITE_BALANCES = ("camera", "auto", "daylight")
HIGHLIGHT_MODES = {"clip": "Clip", "ignore": "Ignore", "blend": "Blend", "reconstruct": "ReconstructDefault"}
DEMOSAIC_ALGORITHMS = ("AHD", "AAHD", "DHT", "DCB", "VNG", "PPG", "LINEAR")
EXPOSURE_RANGE_EV = (-2.0, 3.0)  # LibRaw's exp_shift takes a linear factor from 0.25 to 8
RAW_BITS = 16
PIXELS_PER_MEGAPIXEL = 1_000_000
EXIF_GROUPS = {"Image": None, "EXIF": 0x8769, "GPS": 0x8825}  # ExifRead's key prefixes -> IFD (None: the first)
SKIPPED_EXIF_TAGS = frozenset({0x927C, 0xA005})  # MakerNote, Interoperability pointer: offsets into the RAW file
RAW_MODULES = {"rawpy": "rawpy", "exifread": "exifread"}  # module -> the PyPI package (cliplit's dependencies) reading RAWs


@dataclass(frozen=True)
class RawSettings:
    """
    How LibRaw renders a RAW. The defaults are rawpy's `postprocess(output_bps=16, use_camera_wb=True,
    no_auto_bright=True)`.

    Attributes:
        white_balance: "camera" (as shot, default), "auto" (LibRaw's grey-world estimate) or "daylight"
            (the camera's daylight multipliers).
        auto_bright: let LibRaw brighten the image so that 1% of the pixels clip (default False).
        demosaic: LibRaw's demosaicing algorithm (None: LibRaw's default, AHD).
        highlights: "clip" (default), "ignore", "blend" or "reconstruct" clipped highlights.
        exposure: exposure shift in EV before rendering (0: none; -2 to +3).
    """

    white_balance: str = "camera"
    auto_bright: bool = False
    demosaic: str | None = None
    highlights: str = "clip"
    exposure: float = 0.0

    def __post_init__(self):
        if self.white_balance not in WHITE_BALANCES:
            raise ValueError(f"white_balance must be one of {', '.join(WHITE_BALANCES)}, got {self.white_balance!r}")
        if self.highlights not in HIGHLIGHT_MODES:
            raise ValueError(f"highlights must be one of {', '.join(HIGHLIGHT_MODES)}, got {self.highlights!r}")
        if self.demosaic is not None and self.demosaic.upper() not in DEMOSAIC_ALGORITHMS:
            raise ValueError(f"demosaic must be one of {', '.join(DEMOSAIC_ALGORITHMS)}, got {self.demosaic!r}")
        if not EXPOSURE_RANGE_EV[0] <= self.exposure <= EXPOSURE_RANGE_EV[1]:
            raise ValueError(f"exposure must be from {EXPOSURE_RANGE_EV[0]:g} to {EXPOSURE_RANGE_EV[1]:g} EV, got {self.exposure:g}")

    def postprocess_arguments(self, rawpy) -> dict:
        """The keyword arguments of `rawpy.RawPy.postprocess` for these settings."""
        arguments = {"output_bps": RAW_BITS, "use_camera_wb": self.white_balance == "camera",
                     "no_auto_bright": not self.auto_bright}
        if self.white_balance == "auto":
            arguments["use_auto_wb"] = True
        if self.demosaic is not None:
            arguments["demosaic_algorithm"] = rawpy.DemosaicAlgorithm[self.demosaic.upper()]
        if self.highlights != "clip":
            arguments["highlight_mode"] = getattr(rawpy.HighlightMode, HIGHLIGHT_MODES[self.highlights])
        if self.exposure:
            arguments["exp_shift"] = 2.0 ** self.exposure
        return arguments


def is_raw(path: str | os.PathLike) -> bool:
    """True for a file whose extension is a camera RAW format's."""
    return Path(path).suffix.lower() in RAW_EXTENSIONS


def _raw_modules(name: str) -> dict:
    """rawpy and ExifRead imported (here, not at import time: cliplit runs without them until a RAW is
    read), or an `ImageReadError` naming the file and the missing packages."""
    modules, missing = {}, []
    for module, package in RAW_MODULES.items():
        try:
            modules[module] = importlib.import_module(module)
        except ImportError:
            missing.append(package)
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise ImageReadError(f"{name}: cannot read camera RAW files: {' and '.join(missing)} {verb} not installed "
                             f"(cliplit's dependencies: pip install {' '.join(missing)})")
    return modules


def read_raw(path: str | os.PathLike, max_megapixels: float | None = None, settings: RawSettings | None = None) -> DecodedImage:
    """
    Decode a RAW file into a 16-bit `DecodedImage` with its camera EXIF; raises `ImageReadError` naming
    the file and the reason. `max_megapixels` is checked from the RAW's header, before demosaicing.
    """
    path = Path(path)
    name = display_name(path)
    rawpy = _raw_modules(name)["rawpy"]

    from .codec import decode_array
    from .metadata import ImageMetadata

    settings = settings or RawSettings()
    try:
        # LibRaw prints its data errors ("<file>: Unexpected end of file") itself: only the one-line error is reported
        with without_native_lines((os.fsencode(path) + b": ",)), rawpy.imread(os.fspath(path)) as raw:
            width, height = raw.sizes.width, raw.sizes.height
            megapixels = width * height / PIXELS_PER_MEGAPIXEL
            if max_megapixels is not None and megapixels > max_megapixels:
                raise ImageReadError(f"{name}: {width} x {height} pixels ({megapixels:.1f} MP) is over the "
                                     f"{max_megapixels:g} MP limit (--max-megapixels)")
            rgb = raw.postprocess(**settings.postprocess_arguments(rawpy))
    except rawpy.LibRawFileUnsupportedError:
        version = ".".join(map(str, rawpy.libraw_version))
        raise ImageReadError(f"{name}: not a RAW file LibRaw {version} can read (unsupported camera or format)") from None
    except (rawpy.LibRawIOError, rawpy.LibRawDataError) as error:
        raise ImageReadError(f"{name}: truncated or corrupt RAW data ({error})") from None
    except rawpy.LibRawError as error:
        raise ImageReadError(f"{name}: cannot decode this RAW file ({type(error).__name__}: {error})") from None
    except MemoryError:
        raise ImageReadError(f"{name}: not enough memory to decode this RAW file") from None
    decoded = decode_array(rgb)
    decoded.metadata = ImageMetadata(format=RAW_FORMAT, exif=read_camera_exif(path))
    return decoded


def _exif_value(tag):
    """An ExifRead tag's value in the form Pillow writes back (str, int, IFDRational, bytes, or tuples of them)."""
    from exifread.tags.fields import FieldType
    from PIL.TiffImagePlugin import IFDRational

    values = tag.values
    if tag.field_type == FieldType.ASCII:
        return str(values).rstrip("\x00")
    if tag.field_type in (FieldType.UNDEFINED, FieldType.PROPRIETARY):
        return bytes(values) if not isinstance(values, bytes) else values
    if isinstance(values, (str, bytes)):
        return values
    if tag.field_type in (FieldType.RATIO, FieldType.SIGNED_RATIO):
        values = [IFDRational(value.numerator, value.denominator) for value in values]
    values = tuple(values)
    return values[0] if len(values) == 1 else values


def read_camera_exif(path: Path) -> bytes | None:
    """The first IFD, Exif IFD and GPS IFD of a TIFF-based RAW as an EXIF block, or None where ExifRead finds none."""
    import exifread
    from PIL import Image

    try:
        with open(path, "rb") as file:
            tags = exifread.process_file(file, details=False, extract_thumbnail=False)
    except Exception:  # noqa: BLE001 - a RAW whose EXIF cannot be read is still enhanced, without EXIF
        return None
    exif = Image.Exif()
    groups: dict[int, dict] = {}
    for key, tag in tags.items():
        group, _, _ = key.partition(" ")
        if group not in EXIF_GROUPS or not hasattr(tag, "field_type") or tag.tag in SKIPPED_EXIF_TAGS:
            continue
        if tag.field_type == 13 or tag.tag in EXIF_GROUPS.values():  # IFD pointers: rebuilt by Pillow
            continue
        try:
            value = _exif_value(tag)
        except (TypeError, ValueError, ZeroDivisionError):
            continue
        pointer = EXIF_GROUPS[group]
        if pointer is None:
            exif[tag.tag] = value
        else:
            groups.setdefault(pointer, {})[tag.tag] = value
    for pointer, ifd in groups.items():
        exif[pointer] = ifd
    return exif.tobytes() if len(exif) else None


__all__ = ["RAW_EXTENSIONS", "RAW_FORMAT", "RawSettings", "is_raw", "read_camera_exif", "read_raw"]
