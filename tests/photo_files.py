"""Photographers' files, generated: a camera JPEG (EXIF with make, model, date taken, GPS, orientation 6,
and a Display P3 ICC profile), a HEIC with EXIF, a DNG (Bayer RAW), a 16-bit TIFF, an RGBA WebP.

Importable from every test folder (and by the docs test: `from photo_files import write_camera_jpeg`).
Nothing here reads the network or the reference data.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
from PIL import ExifTags, Image
from PIL.TiffImagePlugin import IFDRational

CAMERA_MAKE = "Cliplit Optics"
CAMERA_MODEL = "Backlit One"
DATE_TAKEN = "2024:05:01 18:30:00"
GPS_LATITUDE = (IFDRational(48, 1), IFDRational(51, 1), IFDRational(2964, 100))
GPS_LONGITUDE = (IFDRational(2, 1), IFDRational(17, 1), IFDRational(4020, 100))
ROTATED_ORIENTATION = 6  # "rotate 90 degrees clockwise to display"
# Display P3 (Apple's), as ICC stores it: D50-adapted colorants (X, Y, Z), a gamma-2.2 curve.
DISPLAY_P3_COLORANTS = ((0.5151, 0.2412, -0.0011), (0.2920, 0.6922, 0.0419), (0.1571, 0.0666, 0.7841))
D50_WHITE = (0.9642, 1.0, 0.8249)
ICC_GAMMA = 2.2
TEXTURE_BLUR_PX = 1.5  # sigma of the scene texture's blur (a lens's resolution)
DNG_WHITE_LEVEL = 16383  # a 14-bit sensor
# XYZ (D65) -> linear sRGB: as the DNG's ColorMatrix1, it makes the camera's space linear sRGB.
XYZ_TO_LINEAR_SRGB = ((3.2404542, -1.5371385, -0.4985314), (-0.9692660, 1.8760108, 0.0415560),
                      (0.0556434, -0.2040259, 1.0572252))


def _s15f16(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _icc_tag_xyz(xyz) -> bytes:
    return b"XYZ \x00\x00\x00\x00" + b"".join(_s15f16(v) for v in xyz)


def _icc_tag_text_description(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\x00"
    return (b"desc\x00\x00\x00\x00" + struct.pack(">I", len(ascii_text)) + ascii_text
            + b"\x00" * 8 + b"\x00\x00\x00" + b"\x00" * 67)


def display_p3_profile(description: str = "Display P3 (cliplit test)") -> bytes:
    """An ICC v2 matrix/TRC display profile with Display P3's primaries, built byte by byte."""
    curve = b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, round(ICC_GAMMA * 256)) + b"\x00\x00"
    tags = [(b"desc", _icc_tag_text_description(description)), (b"cprt", b"text\x00\x00\x00\x00Public domain\x00"),
            (b"wtpt", _icc_tag_xyz(D50_WHITE)), (b"rXYZ", _icc_tag_xyz(DISPLAY_P3_COLORANTS[0])),
            (b"gXYZ", _icc_tag_xyz(DISPLAY_P3_COLORANTS[1])), (b"bXYZ", _icc_tag_xyz(DISPLAY_P3_COLORANTS[2])),
            (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    table, body = [struct.pack(">I", len(tags))], b""
    for signature, data in tags:
        data += b"\x00" * (-len(data) % 4)
        table.append(signature + struct.pack(">II", offset + len(body), len(data)))
        body += data
    size = 128 + table_size + len(body)
    header = (struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
              + struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp" + b"APPL" + b"\x00" * 4 + b"\x00" * 8 + b"\x00" * 8
              + struct.pack(">I", 0) + b"".join(_s15f16(v) for v in D50_WHITE) + b"lcms" + b"\x00" * 16 + b"\x00" * 28)
    assert len(header) == 128
    return header + b"".join(table) + body


def camera_exif(orientation: int = ROTATED_ORIENTATION) -> Image.Exif:
    """EXIF as a camera writes it: make, model, date taken, GPS position, orientation."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = CAMERA_MAKE
    exif[ExifTags.Base.Model] = CAMERA_MODEL
    exif[ExifTags.Base.DateTime] = DATE_TAKEN
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.IFD.Exif] = {ExifTags.Base.DateTimeOriginal: DATE_TAKEN, ExifTags.Base.ExposureTime: IFDRational(1, 250)}
    exif[ExifTags.IFD.GPSInfo] = {ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: GPS_LATITUDE,
                                  ExifTags.GPS.GPSLongitudeRef: "E", ExifTags.GPS.GPSLongitude: GPS_LONGITUDE}
    return exif


def backlit_pixels(height: int = 36, width: int = 48, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8: a bright sky over a dark textured subject, as a backlit photo looks."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0.0, 1.0, height)[:, None, None]
    sky = 0.85 + 0.1 * rng.random((height, width, 3))
    subject = 0.08 + 0.12 * rng.random((height, width, 3))
    values = np.where(rows < 0.4, sky, subject)
    return np.round(np.clip(values, 0, 1) * 255).astype(np.uint8)


def write_camera_jpeg(path, size=(48, 36), icc_profile: bytes | None = None) -> Path:
    """A camera JPEG: EXIF (make, model, date taken, GPS, orientation 6) and a Display P3 profile. `size` is
    the stored (sensor) size; the upright photo is size[1] x size[0]."""
    path = Path(path)
    image = Image.fromarray(backlit_pixels(size[1], size[0]))
    image.save(path, quality=95, exif=camera_exif().tobytes(),
               icc_profile=display_p3_profile() if icc_profile is None else icc_profile)
    return path


def write_heic(path, size=(48, 36)) -> Path:
    """A HEIC with EXIF (make, model, date, GPS) and a Display P3 profile, written by pillow-heif's encoder."""
    import pillow_heif

    path = Path(path)
    image = Image.fromarray(backlit_pixels(size[1], size[0], seed=1))
    heif = pillow_heif.from_pillow(image)
    heif.save(path, quality=-1, exif=camera_exif(orientation=1).tobytes(), icc_profile=display_p3_profile())
    return path


def write_tiff16(path, size=(48, 36)) -> Path:
    """A 16-bit RGB TIFF with make and model tags and a Display P3 profile (written by tifffile)."""
    import tifffile

    path = Path(path)
    pixels = backlit_pixels(size[1], size[0], seed=2).astype(np.uint16) * 257 + 100
    tifffile.imwrite(path, pixels, photometric="rgb", iccprofile=display_p3_profile(), metadata=None, software=False,
                     extratags=[(ExifTags.Base.Make, "s", 0, CAMERA_MAKE, True),
                                (ExifTags.Base.Model, "s", 0, CAMERA_MODEL, True)])
    return path


def write_rgba_webp(path, size=(48, 36)) -> Path:
    """A lossless RGBA WebP (half of it transparent) with EXIF."""
    path = Path(path)
    rgb = backlit_pixels(size[1], size[0], seed=3)
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, : size[0] // 2] = 0
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(path, lossless=True, exif=camera_exif(orientation=1).tobytes())
    return path


def linear_backlit_scene(height: int = 64, width: int = 96, seed: int = 0) -> np.ndarray:
    """(H, W, 3) float64 linear light in [0, 1]: a sky at the sensor's white level over a deep-shadow subject
    (0.2-3% of white, smooth shading and a fine texture, band-limited as a lens would): the scene a camera's RAW
    records."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0.0, 1.0, height)[:, None]
    columns = np.linspace(0.0, 1.0, width)[None, :]
    sky = np.clip(0.9 + 0.2 * columns - 0.1 * rows, 0, 1)
    shading = 0.002 + 0.028 * (0.5 + 0.5 * np.sin(6 * columns + 3 * rows))
    noise = cv2.GaussianBlur(rng.standard_normal((height, width)), (0, 0), TEXTURE_BLUR_PX)  # band-limited, as by a lens
    texture = 1 + 0.15 * noise / noise.std()
    subject = shading * texture
    luminance = np.where(rows < 0.3, sky, subject)
    tint = np.array([1.0, 0.95, 0.85])
    return np.clip(luminance[..., None] * tint, 0, 1)


def write_dng(path, scene: np.ndarray | None = None) -> Path:
    """A Bayer (RGGB) DNG of a linear scene (H, W, 3) in [0, 1] at 14 bits, with make and model, whose camera
    space is linear sRGB (ColorMatrix1) and neutral white balance: LibRaw renders it back to the scene in sRGB."""
    import tifffile

    path = Path(path)
    scene = linear_backlit_scene() if scene is None else scene
    height, width = scene.shape[:2]
    mosaic = np.empty((height, width))
    mosaic[0::2, 0::2] = scene[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = scene[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = scene[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = scene[1::2, 1::2, 2]
    data = np.round(mosaic * DNG_WHITE_LEVEL).astype(np.uint16)
    matrix = [part for row in XYZ_TO_LINEAR_SRGB for value in row for part in (round(value * 10000), 10000)]
    tags = [
        (254, 4, 1, 0, True),  # NewSubfileType: the main image
        (ExifTags.Base.Make, "s", 0, CAMERA_MAKE, True),
        (ExifTags.Base.Model, "s", 0, CAMERA_MODEL, True),
        (ExifTags.Base.DateTime, "s", 0, DATE_TAKEN, True),
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),  # CFAPattern: R G / G B
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),  # DNGBackwardVersion
        (50708, "s", 0, f"{CAMERA_MAKE} {CAMERA_MODEL}", True),  # UniqueCameraModel
        (50714, "H", 1, 0, True),  # BlackLevel
        (50717, "I", 1, DNG_WHITE_LEVEL, True),  # WhiteLevel
        (50721, 10, 9, matrix, True),  # ColorMatrix1 (XYZ -> camera)
        (50778, "H", 1, 21, True),  # CalibrationIlluminant1: D65
        (50728, 5, 3, [1, 1, 1, 1, 1, 1], True),  # AsShotNeutral: white balance 1, 1, 1
    ]
    tifffile.imwrite(path, data, photometric=32803, extratags=tags, metadata=None, software=False)  # 32803: CFA
    return path
