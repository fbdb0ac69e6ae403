"""JPEG compression history recovered from decoded pixels (`cliplit.engine.jpeg_history`): the grid and every
quantization step of a JPEG saved as a PNG (cropped or not) exactly, and no history where there is none."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cliplit.engine.jpeg_history import JPEG_BLOCK, MCU, jpeg_history
from cliplit.imaging.files import read_image

QUALITIES = (50, 60, 70, 75, 80, 90, 95)
CROPS = ((0, 0), (3, 3), (5, 2))  # rows and columns cut from the top and left before the PNG was saved
SCENE_SIDE = 256


def textured_scene(side: int = SCENE_SIDE, seed: int = 0) -> np.ndarray:
    """A textured scene (side, side, 3) uint8: shading plus coloured texture strong enough that every DCT
    frequency of every block holds coefficients away from zero at q50 (and no clipped pixels)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    shading = 90 + 60 * x + 30 * y
    texture = rng.normal(0, 45, (side, side, 3)).astype(np.float32)
    texture[..., 1:] = 0.6 * texture[..., 1:] + 0.4 * texture[..., :1]  # correlated channels, as in photos
    return np.clip(shading[..., None] + texture, 20, 235).astype(np.uint8)


def jpeg_as_png(folder, codes: np.ndarray, quality: int, crop: tuple[int, int] = (0, 0), **options):
    """`codes` saved as a JPEG at `quality` (Pillow: 4:2:0), decoded, cropped by `crop` and saved as a PNG:
    (the PNG's path, the JPEG file's luma and chroma tables)."""
    buffer = io.BytesIO()
    Image.fromarray(codes).save(buffer, "JPEG", quality=quality, **options)
    with Image.open(buffer) as decoded:
        tables = [np.reshape(decoded.quantization[k], (JPEG_BLOCK, JPEG_BLOCK)).astype(np.float32) for k in (0, 1)]
        pixels = np.asarray(decoded.convert("RGB"))[crop[0]:, crop[1]:]
    path = folder / f"q{quality}_{crop[0]}_{crop[1]}.png"
    Image.fromarray(pixels).save(path)
    return path, tables


@pytest.mark.parametrize("crop", CROPS)
@pytest.mark.parametrize("quality", QUALITIES)
def test_grid_and_steps_are_recovered_exactly_from_a_png(tmp_path, quality, crop):
    path, (luma_table, chroma_table) = jpeg_as_png(tmp_path, textured_scene(), quality, crop)
    image = read_image(path)
    assert image.jpeg is None  # a PNG: no tables in the file
    history = jpeg_history(image.pixels)
    assert history is not None and history.quality == quality
    # every step measured from the pixels, not filled in from the quality (a step of 1, at q95, leaves no lattice)
    assert history.measured == np.sum(luma_table >= 2)
    np.testing.assert_array_equal(history.compression.luma_table, luma_table)
    np.testing.assert_array_equal(history.compression.chroma_table, chroma_table)
    assert history.compression.origin == tuple((-cut) % MCU for cut in crop)  # the 4:2:0 grid moved by the crop


def test_a_4_4_4_jpeg_gives_its_luma_grid_and_no_chroma_rebuild(tmp_path):
    path, (luma_table, _) = jpeg_as_png(tmp_path, textured_scene(), 80, (3, 6), subsampling="4:4:4")
    history = jpeg_history(read_image(path).pixels)
    np.testing.assert_array_equal(history.compression.luma_table, luma_table)
    assert history.compression.chroma_table is None
    assert tuple(start % JPEG_BLOCK for start in history.compression.origin) == (5, 2)


def test_a_jpeg_turned_by_90_degrees_gives_the_transposed_table(tmp_path):
    path, (luma_table, _) = jpeg_as_png(tmp_path, textured_scene(), 75)
    turned = tmp_path / "turned.png"
    with Image.open(path) as image:
        image.transpose(Image.Transpose.ROTATE_90).save(turned)
    history = jpeg_history(read_image(turned).pixels)
    assert history.quality == 75
    np.testing.assert_array_equal(history.compression.luma_table, luma_table.T)


def encoded(codes: np.ndarray, file_format: str, **options) -> np.ndarray:
    if file_format == "HEIF":
        from pillow_heif import register_heif_opener

        register_heif_opener()
    buffer = io.BytesIO()
    Image.fromarray(codes).save(buffer, file_format, **options)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"))


@pytest.mark.parametrize(("file_format", "options"), [
    ("PNG", {}), ("WEBP", {"quality": 75}), ("WEBP", {"quality": 95}), ("AVIF", {"quality": 60}), ("HEIF", {"quality": 60})])
def test_no_history_without_a_jpeg(file_format, options):
    codes = textured_scene(seed=1)
    assert jpeg_history(encoded(codes, file_format, **options).astype(np.float32) / 255) is None


def test_no_history_once_the_jpeg_is_resized_or_noisy():
    codes = textured_scene(seed=2)
    decoded = encoded(codes, "JPEG", quality=75)
    resized = np.asarray(Image.fromarray(decoded).resize((150, 150), Image.Resampling.BICUBIC))
    noisy = np.clip(decoded + np.random.default_rng(0).normal(0, 2, decoded.shape), 0, 255).astype(np.uint8)
    assert jpeg_history(resized.astype(np.float32) / 255) is None
    assert jpeg_history(noisy.astype(np.float32) / 255) is None
    assert jpeg_history(decoded.astype(np.float32) / 255).quality == 75
