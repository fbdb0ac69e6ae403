"""Small real photos for the integration tests: crops of the smallest reference photo (in ../shared) of
several sizes, a 16-bit grayscale PNG, and a file that is not an image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CROPS = {"beach.jpg": (0, 0, 96, 64), "tower.png": (120, 200, 200, 320), "street.jpg": (300, 400, 372, 470)}
GRAY16_NAME = "night16.png"
ROTATED_NAME = "portrait.jpg"  # EXIF orientation 6: shown rotated a quarter turn clockwise
EXIF_ORIENTATION_TAG = 0x0112
BROKEN_NAME = "broken.jpg"


def write_photo_folder(folder: Path, source: Path, gray16: bool = True, broken: bool = True) -> Path:
    """Crops of `source` of three sizes (JPEG and PNG), an EXIF-rotated JPEG, a 16-bit grayscale PNG and a
    truncated 'JPEG'."""
    folder.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as photo:
        photo = photo.convert("RGB")
        for name, box in CROPS.items():
            crop = photo.crop(box)
            crop.save(folder / name, quality=92) if name.endswith(".jpg") else crop.save(folder / name)
        exif = Image.Exif()
        exif[EXIF_ORIENTATION_TAG] = 6
        photo.crop((50, 100, 130, 148)).save(folder / ROTATED_NAME, quality=92, exif=exif)
        if gray16:
            gray = np.asarray(photo.crop((10, 10, 58, 42)).convert("L"), dtype=np.uint16) * 257 + 3
            Image.fromarray(gray.astype(np.uint16)).save(folder / GRAY16_NAME)
    if broken:
        (folder / BROKEN_NAME).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder
