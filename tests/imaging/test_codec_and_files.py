"""Every common image mode is read and written back the way a photographer expects."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from cliplit import CLIPLITImageProcessor
from cliplit.imaging.codec import decode_image, encode_array, encode_pil
from cliplit.imaging.files import read_image, write_image

RNG = np.random.default_rng(0)
HEIGHT, WIDTH = 12, 17


def rgb8():
    return (RNG.random((HEIGHT, WIDTH, 3)) * 255).astype(np.uint8)


def test_rgb_round_trip_is_exact():
    array = rgb8()
    decoded = decode_image(Image.fromarray(array))
    assert decoded.pixels.shape == (HEIGHT, WIDTH, 3) and decoded.pixels.dtype == np.float32
    assert decoded.bit_depth == 8 and decoded.alpha is None and not decoded.grayscale
    assert np.array_equal(encode_array(decoded), array)


@pytest.mark.parametrize("mode", ["L", "LA"])
def test_grayscale_stays_grayscale(mode):
    gray = (RNG.random((HEIGHT, WIDTH)) * 255).astype(np.uint8)
    image = Image.fromarray(gray).convert(mode)
    decoded = decode_image(image)
    assert decoded.grayscale
    assert np.array_equal(decoded.pixels[:, :, 0], decoded.pixels[:, :, 2])
    assert encode_pil(decoded).mode == mode
    assert np.array_equal(np.asarray(encode_pil(decoded).convert("L")), gray)


def test_rgba_alpha_is_kept_aside_and_put_back():
    rgba = np.dstack([rgb8(), (RNG.random((HEIGHT, WIDTH)) * 255).astype(np.uint8)])
    decoded = decode_image(Image.fromarray(rgba, "RGBA"))
    assert decoded.alpha is not None
    assert np.array_equal(decoded.pixels, rgba[:, :, :3].astype(np.float32) / 255)
    assert np.array_equal(np.asarray(encode_pil(decoded)), rgba)


def test_palette_with_transparency_keeps_alpha():
    image = Image.fromarray(rgb8()).convert("P")
    transparent_index = int(np.asarray(image)[0, 0])
    image.info["transparency"] = transparent_index
    decoded = decode_image(image)
    assert decoded.alpha is not None and decoded.alpha[0, 0] == 0.0
    assert np.array_equal(decoded.alpha == 0, np.asarray(image) == transparent_index)
    assert encode_pil(decoded).mode == "RGBA"


def test_cmyk_and_palette_convert_to_rgb():
    array = rgb8()
    cmyk = Image.fromarray(array).convert("CMYK")
    assert np.array_equal(encode_array(decode_image(cmyk)), np.asarray(cmyk.convert("RGB")))
    palette = Image.fromarray(array).convert("P")
    assert np.array_equal(encode_array(decode_image(palette)), np.asarray(palette.convert("RGB")))


def test_exif_orientation_is_applied(tmp_path):
    array = rgb8()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(array).save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    decoded = read_image(tmp_path / "rotated.jpg")
    assert decoded.pixels.shape == (WIDTH, HEIGHT, 3)


def test_sixteen_bit_grayscale_keeps_precision(tmp_path):
    gray16 = (RNG.random((HEIGHT, WIDTH)) * 65535).astype(np.uint16)
    Image.fromarray(gray16).save(tmp_path / "gray16.png")
    decoded = read_image(tmp_path / "gray16.png")
    assert decoded.bit_depth == 16 and decoded.grayscale
    write_image(tmp_path / "out.png", decoded)
    assert np.array_equal(cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED), gray16)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_sixteen_bit_color_keeps_precision(tmp_path, suffix):
    rgb16 = (RNG.random((HEIGHT, WIDTH, 3)) * 65535).astype(np.uint16)
    cv2.imwrite(str(tmp_path / f"rgb16{suffix}"), rgb16[:, :, ::-1])
    decoded = read_image(tmp_path / f"rgb16{suffix}")
    assert decoded.bit_depth == 16 and not decoded.grayscale
    assert np.array_equal(encode_array(decoded), rgb16)
    write_image(tmp_path / "out.png", decoded)
    assert np.array_equal(cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)[:, :, ::-1], rgb16)


def test_sixteen_bit_rgba_keeps_alpha(tmp_path):
    rgba16 = (RNG.random((HEIGHT, WIDTH, 4)) * 65535).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "rgba16.png"), rgba16[:, :, [2, 1, 0, 3]])
    decoded = read_image(tmp_path / "rgba16.png")
    assert decoded.alpha is not None and decoded.bit_depth == 16
    assert np.array_equal(encode_array(decoded), rgba16)


def test_processor_batches_numpy_tensor_and_pil_inputs():
    processor = CLIPLITImageProcessor()
    array = rgb8()
    batch = processor([Image.fromarray(array), array, torch.from_numpy(array).permute(2, 0, 1).float() / 255])
    assert batch["pixel_values"].shape == (3, 3, HEIGHT, WIDTH)
    assert batch["pixel_values"].dtype == torch.float32
    torch.testing.assert_close(batch["pixel_values"][0], batch["pixel_values"][2])
    with pytest.raises(ValueError, match="different sizes"):
        processor([array, array[:5]])


def test_processor_postprocess_inverts_preprocess():
    processor = CLIPLITImageProcessor()
    rgba = np.dstack([rgb8(), np.full((HEIGHT, WIDTH), 128, np.uint8)])
    sources = processor.decode(Image.fromarray(rgba, "RGBA"))
    pixel_values = processor(Image.fromarray(rgba, "RGBA"))["pixel_values"]
    (restored,) = processor.postprocess(pixel_values, sources)
    assert restored.mode == "RGBA" and np.array_equal(np.asarray(restored), rgba)


def test_truncated_and_non_image_files_get_one_line_errors(tmp_path):
    from cliplit.errors import ImageReadError

    buffer = io.BytesIO()
    Image.fromarray(rgb8()).resize((200, 200)).save(buffer, "JPEG")
    (tmp_path / "half.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (tmp_path / "notes.png").write_text("not an image")
    for name, reason in [("half.jpg", "truncated"), ("notes.png", "not an image"), ("missing.jpg", "no such file")]:
        with pytest.raises(ImageReadError) as error:
            read_image(tmp_path / name)
        message = str(error.value)
        assert name in message and reason in message and "\n" not in message
