"""Issue 28's red team on photos (metadata that bites, pixel modes, stray lines), in this process: malformed
metadata never stops the pixels (the bad part is left out with a `note:` naming the file, in the CLI, the
Python API, the app and Ray alike), 16-bit gray + alpha and colour-keyed PNGs keep their mode and alpha,
and libraries print none of their own lines."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile
from helpers import run_cli, run_cli_process
from hostile_files import (
    CORRUPT_ICC_PROFILE,
    GOOD_MODEL,
    png_layout,
    png_values,
    write_jpeg_with_wrong_exif,
    write_png,
)
from photo_files import backlit_pixels, display_p3_profile, write_dng
from PIL import ExifTags, Image

RNG = np.random.default_rng(28)


def lines(stderr: str, prefix: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(prefix)]


def exif_of(path) -> tuple[dict, dict]:
    """(first IFD, GPS IFD) of a written file's EXIF."""
    with Image.open(path) as image:
        exif = image.getexif()
        return dict(exif), dict(exif.get_ifd(ExifTags.IFD.GPSInfo))


# ------------------------------------------------------------------------------- metadata that bites
def test_exif_tags_of_the_wrong_type_are_left_out_with_a_note_and_the_batch_goes_on(tmp_path, model_dir):
    (tmp_path / "in").mkdir()
    write_jpeg_with_wrong_exif(tmp_path / "in" / "bad_make.jpg", make_rational=True, gps_ref_rational=False)
    write_jpeg_with_wrong_exif(tmp_path / "in" / "bad_gps.jpg", make_rational=False, gps_ref_rational=True, orientation=6)
    Image.fromarray(backlit_pixels()).save(tmp_path / "in" / "good.jpg")
    result = run_cli("enhance", tmp_path / "in", "-o", tmp_path / "out", "--model", model_dir, "-q")
    assert result.returncode == 0 and not lines(result.stderr, "error:"), result.stderr
    notes = lines(result.stderr, "note:")
    assert len(notes) == 2, result.stderr
    assert any("bad_make.jpg" in note and "EXIF tag Make" in note for note in notes), notes
    assert any("bad_gps.jpg" in note and "EXIF tag GPSLatitudeRef" in note for note in notes), notes
    first, _ = exif_of(tmp_path / "out" / "bad_make.png")
    assert ExifTags.Base.Make not in first and first[ExifTags.Base.Model] == GOOD_MODEL  # only the bad tag is left out
    first, gps = exif_of(tmp_path / "out" / "bad_gps.png")
    assert first[ExifTags.Base.Make] == "Canon" and ExifTags.GPS.GPSLatitudeRef not in gps
    assert [float(v) for v in gps[ExifTags.GPS.GPSLatitude]] == [48.0, 51.0, 29.64]
    with Image.open(tmp_path / "out" / "bad_gps.png") as turned:  # orientation 6 applied, then reset to 1
        assert turned.size == (36, 48) and turned.getexif()[ExifTags.Base.Orientation] == 1
    assert (tmp_path / "out" / "good.png").is_file()


@pytest.mark.parametrize(("name", "exif"), [("garbage.jpg", b"Exif\0\0garbage, not TIFF"),
                                           ("broken_ifd.png", b"Exif\0\0MM\0*\0\0\0\x08\xff\xff"),
                                           ("cut_ifd.webp", b"Exif\0\0II*\0\x08\0\0\0\x05\0")])
def test_an_exif_block_no_tag_can_be_read_from_is_left_out_with_a_note(tmp_path, model_dir, name, exif):
    source = tmp_path / name
    Image.fromarray(backlit_pixels()).save(source, exif=exif, **({"lossless": True} if name.endswith(".webp") else {}))
    with Image.open(source) as saved:
        assert saved.info.get("exif") and not len(saved.getexif())  # the block is there; Pillow reads no tag from it
    result = run_cli("enhance", source, "-o", tmp_path / "out", "--model", model_dir, "-q")
    assert result.returncode == 0 and not lines(result.stderr, "error:"), result.stderr
    assert lines(result.stderr, "note:") == [
        f"note: {source}: malformed metadata left out: the EXIF block (unreadable: no tag could be read from it)"]
    with Image.open(tmp_path / "out" / f"{source.stem}.png") as written:
        assert not written.info.get("exif")


def test_a_well_formed_empty_exif_block_gets_no_note(tmp_path, model_dir):
    source = tmp_path / "empty_exif.jpg"
    Image.fromarray(backlit_pixels()).save(source, exif=Image.Exif())  # a TIFF header and an IFD of 0 entries
    result = run_cli("enhance", source, "-o", tmp_path / "out", "--model", model_dir, "-q")
    assert result.returncode == 0 and result.stderr == "", result.stderr


@pytest.mark.parametrize("output_format", ["jpeg", "tiff", "webp", "avif"])
def test_every_format_is_written_with_the_well_formed_tags(tmp_path, model_dir, output_format):
    source = write_jpeg_with_wrong_exif(tmp_path / "photo.jpg")
    result = run_cli("enhance", source, "-o", tmp_path / "out", "--model", model_dir, "--format", output_format, "-q")
    assert result.returncode == 0 and not lines(result.stderr, "error:"), result.stderr
    written = next((tmp_path / "out").glob("photo.*"))
    first, gps = exif_of(written)
    assert first[ExifTags.Base.Model] == GOOD_MODEL and ExifTags.Base.Make not in first
    assert ExifTags.GPS.GPSLatitudeRef not in gps and ExifTags.GPS.GPSLatitude in gps


def test_a_raw_whose_make_is_a_rational_is_enhanced_at_16_bits_with_a_note(tmp_path, model_dir):
    raw = write_dng(tmp_path / "camera.dng")
    data = raw.read_bytes()
    make_entry = (0x010F).to_bytes(2, "little") + (2).to_bytes(2, "little")  # Make, ASCII
    assert data.count(make_entry) == 1
    raw.write_bytes(data.replace(make_entry + data[data.index(make_entry) + 4:data.index(make_entry) + 8],
                                 (0x010F).to_bytes(2, "little") + (5).to_bytes(2, "little") + (1).to_bytes(4, "little")))
    result = run_cli("enhance", raw, "-o", tmp_path / "out", "--model", model_dir, "--format", "tiff", "-q")
    assert result.returncode == 0 and not lines(result.stderr, "error:"), result.stderr
    assert any("camera.dng" in note and "EXIF tag Make" in note for note in lines(result.stderr, "note:")), result.stderr
    assert tifffile.imread(tmp_path / "out" / "camera.tif").dtype == np.uint16


def test_the_python_api_the_app_and_ray_read_the_same_photo(tmp_path, model_dir):
    from cliplit import Enhancer
    from cliplit.imaging.files import read_image
    from cliplit.model.loading import load_network

    source = write_jpeg_with_wrong_exif(tmp_path / "photo.jpg")
    decoded = read_image(source)
    assert "photo.jpg" in decoded.note and "EXIF tags Make, GPSLatitudeRef" in decoded.note
    network = load_network(model_dir)
    with Image.open(source) as photo:  # a PIL image given to the engine: its EXIF comes back, well formed
        enhanced = Enhancer(network).enhance(photo)
    exif = Image.Exif()
    exif.load(enhanced.info["exif"])
    assert exif[ExifTags.Base.Model] == GOOD_MODEL and ExifTags.Base.Make not in exif

    from cliplit.interfaces.service import EnhancementService

    service = EnhancementService(network, output_dir=tmp_path / "app")  # the app's requests
    try:
        image, _, _, download = service.enhance_file(source, 1.0, "jpeg")
        assert download.is_file() and image.note.startswith("photo.jpg: ") and "EXIF tags Make" in image.note
    finally:
        service.close()

    pytest.importorskip("ray")
    from cliplit.integrations.ray import BatchEnhancer

    array, depth = BatchEnhancer(model=str(model_dir)).enhance_one(data=source.read_bytes(), name="s3://bucket/photo.jpg")
    assert array.shape == (36, 48, 3) and depth == 8


@pytest.mark.parametrize("name, pixels", [
    ("rgb8.png", backlit_pixels(30, 40)),
    ("rgb16.png", backlit_pixels(30, 40).astype(np.uint16) * 257),
    ("gray16.png", backlit_pixels(30, 40)[:, :, 0].astype(np.uint16) * 257),
])
def test_a_corrupt_icc_profile_is_left_out_with_a_note_and_no_library_lines(tmp_path, model_dir, capfd, name, pixels):
    source = write_png(tmp_path / name, pixels, icc_profile=CORRUPT_ICC_PROFILE)
    tiff = tmp_path / f"{source.stem}.tif"
    tifffile.imwrite(tiff, pixels, photometric="rgb" if pixels.ndim == 3 else "minisblack", iccprofile=CORRUPT_ICC_PROFILE)
    result = run_cli("enhance", source, tiff, "-o", tmp_path / "out", "--model", model_dir, "-q")
    native = capfd.readouterr().err  # what libpng or OpenCV print themselves goes to file descriptor 2
    assert result.returncode == 0 and not lines(result.stderr, "error:"), result.stderr
    assert "libpng" not in native and "[ERROR" not in native and "[ WARN" not in native, native
    notes = lines(result.stderr, "note:")
    assert len(notes) == 2 and all("ICC profile" in note for note in notes), notes
    bits = 16 if pixels.dtype == np.uint16 else 8
    for output in (tmp_path / "out" / f"{source.stem}.png", tmp_path / "out" / f"{tiff.name}.png"):
        assert png_layout(output)[0] == bits
        with Image.open(output) as image:
            assert "icc_profile" not in image.info


def incomplete_profile() -> bytes:
    """The Display P3 profile with only its first three tags (no colorants, no curves): LittleCMS reads it, but no
    viewer can convert its colours."""
    profile = bytearray(display_p3_profile())
    profile[128:132] = (3).to_bytes(4, "big")  # the tag count
    return bytes(profile)


@pytest.mark.parametrize("case", ["incomplete", "a gray image with an RGB profile", "an RGB image, well formed"])
def test_an_icc_profile_is_carried_only_when_it_describes_the_pixels(tmp_path, case):
    from cliplit.imaging.files import read_image

    pixels = backlit_pixels(30, 40)[:, :, 0] if case.startswith("a gray") else backlit_pixels(30, 40)
    profile = incomplete_profile() if case == "incomplete" else display_p3_profile()
    Image.fromarray(pixels).save(tmp_path / "photo.png", icc_profile=profile)
    decoded = read_image(tmp_path / "photo.png")
    if case.endswith("well formed"):
        assert decoded.metadata.icc_profile == profile and decoded.note is None
    else:
        assert decoded.metadata.icc_profile is None and "photo.png" in decoded.note and "the ICC profile (" in decoded.note


def test_metadata_an_encoder_refuses_is_left_out_with_a_note(tmp_path, model_dir):
    source = tmp_path / "long.png"
    exif = Image.Exif()
    exif[ExifTags.Base.Model] = GOOD_MODEL
    exif[ExifTags.Base.ImageDescription] = "x" * 70_000  # over the 64 KB a JPEG's EXIF segment holds
    Image.fromarray(backlit_pixels()).save(source, exif=exif.tobytes())
    result = run_cli("enhance", source, "-o", tmp_path / "out", "--model", model_dir, "--format", "jpeg", "-q")
    assert result.returncode == 0 and not lines(result.stderr, "error:"), result.stderr
    (note,) = lines(result.stderr, "note:")
    assert "long.png" in note and "written without its EXIF, XMP and IPTC" in note
    with Image.open(tmp_path / "out" / "long.jpg") as written:
        assert written.size == (48, 36) and not written.getexif()


# ------------------------------------------------------------------------------------ pixels and modes
@pytest.mark.parametrize("output_format", ["png", "tiff"])
def test_sixteen_bit_gray_with_alpha_stays_gray_with_alpha(tmp_path, model_dir, output_format):
    gray = RNG.integers(0, 65536, (30, 40), dtype=np.uint16)
    alpha = RNG.integers(0, 65536, (30, 40), dtype=np.uint16)
    source = write_png(tmp_path / "gray_alpha.png", np.dstack([gray, alpha]))
    result = run_cli("enhance", source, "-o", tmp_path / "out", "--model", model_dir, "--strength", "0",
                     "--format", output_format, "-q")
    assert result.returncode == 0, result.stderr
    if output_format == "png":
        written = tmp_path / "out" / "gray_alpha.png"
        assert png_layout(written) == (16, True, True)
        values = png_values(written)
    else:
        values = tifffile.imread(tmp_path / "out" / "gray_alpha.tif")
    assert values.shape == (30, 40, 2)
    assert np.array_equal(values[:, :, 0], gray) and np.array_equal(values[:, :, 1], alpha)  # strength 0: the input


@pytest.mark.parametrize("name, pixels", [
    ("rgb8.png", backlit_pixels(30, 40)),
    ("gray8.png", backlit_pixels(30, 40)[:, :, 0]),
    ("rgb16.png", backlit_pixels(30, 40).astype(np.uint16) * 257),
    ("gray16.png", backlit_pixels(30, 40)[:, :, 0].astype(np.uint16) * 257),
])
def test_a_colour_key_makes_those_pixels_transparent(tmp_path, model_dir, name, pixels):
    key = pixels[0, 0] if pixels.ndim == 2 else tuple(pixels[0, 0])
    keyed = (pixels == pixels[0, 0]) if pixels.ndim == 2 else (pixels == pixels[0, 0]).all(axis=2)
    assert 0 < keyed.sum() < keyed.size
    source = write_png(tmp_path / name, pixels, transparent=int(key) if pixels.ndim == 2 else tuple(map(int, key)))
    result = run_cli("enhance", source, "-o", tmp_path / "out", "--model", model_dir, "--strength", "0", "-q")
    assert result.returncode == 0, result.stderr
    written = tmp_path / "out" / name
    bits, grayscale, alpha = png_layout(written)
    assert (bits, grayscale, alpha) == (pixels.itemsize * 8, pixels.ndim == 2, True)
    values = png_values(written)
    opaque = 65535 if bits == 16 else 255
    assert np.array_equal(values[:, :, -1], np.where(keyed, 0, opaque))
    assert np.array_equal(values[:, :, :-1], pixels.reshape(values.shape[0], values.shape[1], -1))  # strength 0


def test_a_low_bit_gray_colour_key_is_scaled_as_its_pixels(tmp_path):
    from cliplit.imaging.files import read_image

    levels = np.tile(np.arange(4, dtype=np.uint8), (6, 2))  # 2-bit gray: 0-3, read as 0, 85, 170, 255
    path = tmp_path / "two_bit.png"
    with open(path, "wb") as handle:
        import png

        png.Writer(8, 6, greyscale=True, bitdepth=2, transparent=1).write(handle, levels.tolist())
    decoded = read_image(path)
    assert decoded.grayscale and np.array_equal(decoded.alpha == 0, levels == 1)


# ------------------------------------------------------------------------------------------ stray lines
def test_a_decompression_bomb_is_one_line_without_pillows_warning(tmp_path, model_dir):
    bomb = tmp_path / "bomb.png"
    Image.new("L", (12000, 12000)).save(bomb)  # 144 MP of zeros: a few hundred KB, over Pillow's warning limit
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_cli("enhance", bomb, "-o", tmp_path / "out", "--model", model_dir, "-q")
    (line,) = result.stderr.splitlines()  # one line: nothing of Pillow's
    assert result.returncode == 1 and line == f"error: {bomb}: 12000 x 12000 pixels (144.0 MP) is over the 50 MP limit (--max-megapixels)"
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


@pytest.mark.slow
def test_the_command_prints_only_its_own_lines_for_hostile_photos(tmp_path, model_dir):
    """As a user runs it: a decompression bomb, a 16-bit PNG with a corrupt profile and a JPEG with EXIF of the wrong
    type give one error and two notes on stderr, and nothing from Pillow, libpng or OpenCV."""
    Image.new("L", (12000, 12000)).save(tmp_path / "bomb.png")
    write_png(tmp_path / "profile16.png", backlit_pixels(30, 40).astype(np.uint16) * 257, icc_profile=CORRUPT_ICC_PROFILE)
    write_jpeg_with_wrong_exif(tmp_path / "camera.jpg")
    result = run_cli_process("enhance", tmp_path / "bomb.png", tmp_path / "profile16.png", tmp_path / "camera.jpg",
                             "-o", tmp_path / "out", "--model", model_dir, "-q")
    stderr = result.stderr.splitlines()
    assert result.returncode == 1 and len(stderr) == 3, result.stderr
    assert lines(result.stderr, "error:") == [f"error: {tmp_path / 'bomb.png'}: 12000 x 12000 pixels (144.0 MP) is over "
                                              "the 50 MP limit (--max-megapixels)"]
    assert len(lines(result.stderr, "note:")) == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == ["camera.png", "profile16.png"]
