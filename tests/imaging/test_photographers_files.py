"""Photographers' files in and out (issue 20): HEIC, RAW, 16-bit TIFF, RGBA WebP and a camera JPEG through
every --format, with EXIF, XMP/IPTC and the ICC profile checked in the outputs; --strip-metadata,
--color-space srgb, RAW settings, same-stem RAW+JPEG pairs, bad files, the app's download, evaluate."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ENHANCEMENT_CHECKPOINT, REPO_ROOT
from helpers import run_cli, run_cli_process
from photo_files import (
    CAMERA_MAKE,
    CAMERA_MODEL,
    DATE_TAKEN,
    GPS_LATITUDE,
    display_p3_profile,
    linear_backlit_scene,
    write_camera_jpeg,
    write_dng,
    write_heic,
    write_rgba_webp,
    write_tiff16,
)
from PIL import ExifTags, Image, ImageCms

from cliplit.imaging.files import read_image, write_image
from cliplit.imaging.formats import FORMAT_CHOICES, FORMAT_SUFFIXES, OutputOptions
from cliplit.imaging.raw import RawSettings

SOURCES = {"camera.jpg": write_camera_jpeg, "phone.heic": write_heic, "scan.tif": write_tiff16, "logo.webp": write_rgba_webp,
           "raw.dng": write_dng}
AUTO_SUFFIXES = {"camera.jpg": ".jpg", "phone.heic": ".png", "scan.tif": ".tif", "logo.webp": ".webp", "raw.dng": ".tif"}
SIXTEEN_BIT_SOURCES = {"scan.tif", "raw.dng"}


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("photos")
    return {name: write(folder / name) for name, write in SOURCES.items()}


def depth_of(path: Path) -> int:
    return 16 if cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED).dtype == np.uint16 else 8


def check_output(output: Path, source: Path, output_format: str, stripped: bool = False) -> None:
    """The output holds the source's upright pixels, its ICC profile, and (unless stripped) its camera EXIF."""
    decoded = read_image(source)
    with Image.open(output) as image:
        assert image.size == decoded.size  # upright (orientation applied), same size
        exif = image.getexif()
        assert exif.get(ExifTags.Base.Orientation, 1) == 1
        assert image.info.get("icc_profile") == decoded.metadata.icc_profile
        if stripped:
            assert not exif.get(ExifTags.Base.Make) and not exif.get_ifd(ExifTags.IFD.GPSInfo)
            assert "xmp" not in image.info and "XML:com.adobe.xmp" not in image.info
        else:
            assert exif.get(ExifTags.Base.Make) == CAMERA_MAKE and exif.get(ExifTags.Base.Model) == CAMERA_MODEL
            has_gps = source.suffix in (".jpg", ".heic", ".webp")
            sixteen_bit_tiff = output_format == "tiff" and source.name in SIXTEEN_BIT_SOURCES
            if has_gps and not sixteen_bit_tiff:  # 16-bit TIFF (tifffile) writes no GPS IFD: documented
                assert exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitude] == tuple(float(v) for v in GPS_LATITUDE)
                exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)
                assert exif_ifd[ExifTags.Base.DateTimeOriginal] == DATE_TAKEN
                assert (exif_ifd[ExifTags.Base.ExifImageWidth], exif_ifd[ExifTags.Base.ExifImageHeight]) == image.size
        if output_format == "jpeg":
            from PIL import JpegImagePlugin

            assert JpegImagePlugin.get_sampling(image) == 0  # 4:4:4 chroma
        has_alpha = "A" in image.mode or image.info.get("transparency") is not None
        assert has_alpha == (decoded.alpha is not None and output_format != "jpeg")
    sixteen = decoded.bit_depth == 16 and output_format in ("png", "tiff")
    assert depth_of(output) == (16 if sixteen else 8)


@pytest.mark.reference
@pytest.mark.parametrize("output_format", FORMAT_CHOICES)
def test_every_input_through_every_format_keeps_metadata_profile_and_depth(sources, tmp_path, output_format):
    result = run_cli("enhance", *sources.values(), "--model", ENHANCEMENT_CHECKPOINT, "-o", tmp_path, "--format",
                     output_format, "--quiet")
    assert result.returncode == 0, result.stderr
    for name, source in sources.items():
        suffix = AUTO_SUFFIXES[name] if output_format == "auto" else FORMAT_SUFFIXES[output_format]
        output = tmp_path / f"{source.stem}{suffix}"
        assert output.is_file(), sorted(p.name for p in tmp_path.iterdir())
        check_output(output, source, {".jpg": "jpeg", ".tif": "tiff", ".png": "png", ".webp": "webp",
                                      ".avif": "avif"}[suffix])


@pytest.mark.slow
@pytest.mark.reference
def test_strip_metadata_writes_no_exif_gps_or_xmp_as_a_process(sources, tmp_path):
    result = run_cli_process("enhance", sources["camera.jpg"], sources["phone.heic"], "--model", ENHANCEMENT_CHECKPOINT,
                             "-o", tmp_path, "--format", "jpeg", "--quality", "90", "--strip-metadata", "--quiet")
    assert result.returncode == 0, result.stderr
    for source in (sources["camera.jpg"], sources["phone.heic"]):
        check_output(tmp_path / f"{source.stem}.jpg", source, "jpeg", stripped=True)


@pytest.mark.reference
def test_wide_gamut_input_at_strength_zero_is_the_input(tmp_path):
    source = tmp_path / "p3.png"
    pixels = np.random.default_rng(0).integers(0, 256, (20, 28, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(source, icc_profile=display_p3_profile())
    result = run_cli("enhance", source, "--model", ENHANCEMENT_CHECKPOINT, "-o", tmp_path / "out", "--strength", "0", "--quiet")
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "out" / "p3.png") as output:
        assert np.array_equal(np.asarray(output), pixels)
        assert output.info["icc_profile"] == display_p3_profile()


def test_color_space_srgb_is_littlecms_conversion(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (20, 28, 3), dtype=np.uint8)
    source = tmp_path / "p3.png"
    Image.fromarray(pixels).save(source, icc_profile=display_p3_profile())
    decoded = read_image(source)
    write_image(tmp_path / "srgb.png", decoded, OutputOptions(color_space="srgb"))
    p3 = ImageCms.ImageCmsProfile(io.BytesIO(display_p3_profile()))
    expected = np.asarray(ImageCms.profileToProfile(Image.fromarray(pixels), p3, ImageCms.createProfile("sRGB")))
    with Image.open(tmp_path / "srgb.png") as output:
        assert np.array_equal(np.asarray(output), expected)
        profile = ImageCms.ImageCmsProfile(io.BytesIO(output.info["icc_profile"]))
        assert "sRGB" in ImageCms.getProfileDescription(profile)
    assert not np.array_equal(expected, pixels)  # P3 -> sRGB changes saturated colours

    # 16 bits: LittleCMS's result at every 8-bit code, 16-bit (smooth) between codes
    import tifffile

    codes = np.random.default_rng(3).integers(0, 256, (20, 28, 3)).astype(np.uint16)
    between = codes.copy()
    between[::2] = np.minimum(codes[::2] * 257 + 100, 65535)  # even rows: between two 8-bit codes
    between[1::2] = codes[1::2] * 257  # odd rows: exactly an 8-bit code
    tifffile.imwrite(tmp_path / "p3.tif", between, photometric="rgb", iccprofile=display_p3_profile(), metadata=None)
    write_image(tmp_path / "srgb16.tif", read_image(tmp_path / "p3.tif"), OutputOptions(color_space="srgb"))
    converted = cv2.imread(os.fspath(tmp_path / "srgb16.tif"), cv2.IMREAD_UNCHANGED)[:, :, ::-1].astype(np.float64)
    reference = np.asarray(ImageCms.profileToProfile(Image.fromarray(codes.astype(np.uint8)), p3,
                                                     ImageCms.createProfile("sRGB")), dtype=np.float64)
    assert np.abs(converted[1::2] / 257 - reference[1::2]).max() <= 0.5 / 257 * 2
    assert np.any(converted[::2] % 257 != 0)  # not rounded to 8-bit codes


def test_raw_is_decoded_exactly_as_rawpy_postprocess_by_default(tmp_path):
    import rawpy

    dng = write_dng(tmp_path / "scene.dng")
    with rawpy.imread(os.fspath(dng)) as raw:
        expected = raw.postprocess(output_bps=16, use_camera_wb=True, no_auto_bright=True)
    decoded = read_image(dng)
    assert decoded.bit_depth == 16 and decoded.metadata.format == "RAW"
    assert np.array_equal(np.round(decoded.pixels * 65535).astype(np.uint16), expected)
    with rawpy.imread(os.fspath(dng)) as raw:
        brighter = raw.postprocess(output_bps=16, use_camera_wb=True, no_auto_bright=True, exp_shift=2.0)
    assert np.array_equal(np.round(read_image(dng, raw_settings=RawSettings(exposure=1.0)).pixels * 65535), brighter)


def test_enhancer_on_a_pil_image_returns_a_pil_image_with_the_same_profile(converted_model_dir):
    from cliplit.engine.enhancer import Enhancer
    from cliplit.model.loading import load_network

    image = Image.fromarray(np.random.default_rng(2).integers(0, 256, (24, 32, 3), dtype=np.uint8))
    image.info["icc_profile"] = display_p3_profile()
    enhanced = Enhancer(load_network(converted_model_dir)).enhance(image)
    assert isinstance(enhanced, Image.Image) and enhanced.info["icc_profile"] == display_p3_profile()


@pytest.mark.reference
def test_raw_and_jpeg_with_the_same_stem_are_named_apart(tmp_path):
    write_dng(tmp_path / "IMG_0001.dng")
    write_camera_jpeg(tmp_path / "IMG_0001.jpg")
    for output_format, expected in (("png", {"IMG_0001.png", "IMG_0001.jpg.png"}), ("auto", {"IMG_0001.tif", "IMG_0001.jpg"})):
        out = tmp_path / output_format
        result = run_cli("enhance", tmp_path / "IMG_0001.dng", tmp_path / "IMG_0001.jpg", "--model", ENHANCEMENT_CHECKPOINT,
                         "-o", out, "--format", output_format, "--quiet")
        assert result.returncode == 0, result.stderr
        assert {p.name for p in out.iterdir() if p.is_file()} == expected


@pytest.mark.reference
@pytest.mark.parametrize("run", [run_cli, pytest.param(run_cli_process, marks=pytest.mark.slow)], ids=["in-process", "process"])
def test_bad_raw_and_heic_files_give_one_line_each_and_the_batch_goes_on(tmp_path, run):
    good = write_camera_jpeg(tmp_path / "good.jpg")
    dng = write_dng(tmp_path / "whole.dng", linear_backlit_scene(128, 160)).read_bytes()
    (tmp_path / "truncated.dng").write_bytes(dng[: len(dng) // 3])
    (tmp_path / "notraw.nef").write_bytes(b"this is no camera's RAW file" * 40)
    heic = write_heic(tmp_path / "whole.heic").read_bytes()
    (tmp_path / "truncated.heic").write_bytes(heic[: len(heic) // 2])
    bad = ["truncated.dng", "notraw.nef", "truncated.heic"]
    out = tmp_path / "out"
    result = run("enhance", good, *(tmp_path / name for name in bad), tmp_path / "whole.dng", "--model",
                 ENHANCEMENT_CHECKPOINT, "-o", out, "--max-megapixels", "0.01", "--quiet")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert len(errors) == len(bad) + 1, result.stderr  # whole.dng: 160 x 128 is over 0.01 MP
    for name in bad + ["whole.dng"]:
        assert sum(name in line for line in errors) == 1, result.stderr
    assert any("whole.dng" in line and "--max-megapixels" in line for line in errors)
    assert {p.name for p in out.iterdir() if p.is_file()} == {"good.png"}  # nothing partial
    other_lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("error:")]
    assert not other_lines, result.stderr  # LibRaw's own messages (on file descriptor 2: the process run) are not passed on


@pytest.mark.slow
@pytest.mark.reference
def test_libraw_messages_filtered_in_a_reader_thread_never_cut_the_lines_printed_meanwhile(tmp_path):
    # The CLI decodes RAWs in reader threads while the main thread prints one `error:` line per bad file;
    # LibRaw's own message is filtered by pointing file descriptor 2 elsewhere for a moment. Here that
    # happens 300 times while lines are printed, as print and tqdm.write print them.
    dng = write_dng(tmp_path / "whole.dng", linear_backlit_scene(128, 160)).read_bytes()
    (tmp_path / "truncated.dng").write_bytes(dng[: len(dng) // 2])
    script = f"""
import sys, threading
from tqdm import tqdm
from cliplit.errors import ImageReadError
from cliplit.imaging.raw import read_raw
from cliplit.safety.boundary import run_entry_point

sys.setswitchinterval(1e-6)  # the threads take turns as often as they can: a loaded machine's worst case
reading_done = threading.Event()

def read_truncated_raws():
    for _ in range(300):
        try:
            read_raw({os.fspath(tmp_path / "truncated.dng")!r})
        except ImageReadError:
            pass
    reading_done.set()

def command():
    threading.Thread(target=read_truncated_raws).start()
    printed = 0
    while not reading_done.is_set():
        print(f"error: line {{printed}} from print", file=sys.stderr)
        tqdm.write(f"error: line {{printed}} from tqdm", file=sys.stderr)
        printed += 1
    print(printed)

sys.exit(run_entry_point(command))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    printed = int(result.stdout)
    expected = {f"error: line {index} from {writer}" for index in range(printed) for writer in ("print", "tqdm")}
    lines = result.stderr.splitlines()
    assert printed > 300 and len(lines) == len(expected), (printed, len(lines))
    assert set(lines) == expected, [line for line in lines if line not in expected][:5]  # no LibRaw line either


@pytest.mark.slow
@pytest.mark.reference
def test_a_heif_plugin_that_fails_to_load_is_one_line_for_heic_files_only(tmp_path):
    broken = tmp_path / "broken_plugins"
    for module in ("pi_heif", "pillow_heif"):
        (broken / module).mkdir(parents=True)
        (broken / module / "__init__.py").write_text("raise OSError('libheif.so.1: cannot open shared object file')\n")
    heic, good = write_heic(tmp_path / "phone.heic"), write_camera_jpeg(tmp_path / "good.jpg")
    env = {"PYTHONPATH": os.pathsep.join([str(broken), str(REPO_ROOT)])}
    result = run_cli_process("enhance", heic, good, "--model", ENHANCEMENT_CHECKPOINT, "-o", tmp_path / "out", "--quiet", env=env)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 1 and len(errors) == 1, result.stderr
    assert "phone.heic" in errors[0] and "libheif.so.1" in errors[0]
    assert {p.name for p in (tmp_path / "out").iterdir() if p.is_file()} == {"good.png"}


@pytest.mark.reference
def test_app_download_formats_keep_metadata_and_profile(converted_model_dir, sources):
    from cliplit.interfaces.service import EnhancementService
    from cliplit.model.loading import load_network

    enhancer = EnhancementService(load_network(converted_model_dir))  # the app's service
    try:
        cases = [("camera.jpg", "png", ".png"), ("camera.jpg", "jpeg", ".jpg"), ("camera.jpg", "tiff", ".tif"),
                 ("phone.heic", "jpeg", ".jpg"), ("raw.dng", "png", ".png")]  # HEIC and RAW read as the CLI reads them
        for name, download, suffix in cases:
            _, _, _, target = enhancer.enhance_file(str(sources[name]), 1.0, download)
            assert target.suffix == suffix
            sixteen = download == "tiff" or (name == "raw.dng" and download == "png")
            assert depth_of(target) == (16 if sixteen else 8)
            with Image.open(target) as image:
                assert image.getexif().get(ExifTags.Base.Make) == CAMERA_MAKE
                assert image.info.get("icc_profile") == read_image(sources[name]).metadata.icc_profile
    finally:
        enhancer.close()


def test_evaluate_reads_heic_and_raw_inputs(sources, tmp_path):
    from cliplit.evaluation.evaluate import Method, evaluate

    targets = {}
    for name in ("phone.heic", "raw.dng"):
        target = tmp_path / f"{Path(name).stem}.png"
        write_image(target, read_image(sources[name]))
        targets[target.stem] = target
    method = Method("copies", predictions=dict(targets))
    messages = []
    scores, _ = evaluate([sources["phone.heic"], sources["raw.dng"]], targets, [method], ["psnr"], messages.append)
    assert not messages and set(scores["copies"].values) == {"phone.heic", "raw.dng"}


def test_pipeline_reads_heic_and_returns_the_profile_and_upright_exif(converted_model_dir, sources):
    from transformers import pipeline

    import cliplit  # noqa: F401 - registers the task

    enhancer = pipeline("backlit-enhancement", model=str(converted_model_dir), device="cpu")
    for name in ("phone.heic", "camera.jpg"):
        enhanced = enhancer(str(sources[name]))
        assert enhanced.info["icc_profile"] == display_p3_profile()
        exif = Image.Exif()
        exif.load(enhanced.info["exif"])
        assert exif[ExifTags.Base.Make] == CAMERA_MAKE and exif[ExifTags.Base.Orientation] == 1


def test_a_cmyk_profile_is_not_carried_onto_rgb_pixels(tmp_path):
    source = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 12), (10, 20, 30, 40)).save(source, icc_profile=b"not an RGB profile" * 4, exif=camera_exif_bytes())
    decoded = read_image(source)
    assert decoded.metadata.icc_profile is None and decoded.metadata.exif  # the EXIF still travels


def camera_exif_bytes() -> bytes:
    from photo_files import camera_exif

    return camera_exif().tobytes()


XMP_PACKET = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
              b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/" '
              b'tiff:Orientation="6"><dc:title>Backlit at dusk</dc:title></rdf:Description></rdf:RDF></x:xmpmeta>')
IPTC_CAPTION = b"Backlit at dusk"


def exif_with_thumbnail(thumbnail: bytes) -> bytes:
    """Camera EXIF whose IFD1 holds a JPEG thumbnail (as cameras write it): IFD1 appended, IFD0's next pointer set."""
    exif = camera_exif_bytes()
    tiff = bytearray(exif[6:])
    order = "<" if tiff[:2] == b"II" else ">"
    ifd0 = struct.unpack_from(order + "I", tiff, 4)[0]
    next_pointer = ifd0 + 2 + 12 * struct.unpack_from(order + "H", tiff, ifd0)[0]
    ifd1 = len(tiff)
    entries = [(0x0103, 3, 1, 6 << 16 if order == ">" else 6), (0x0201, 4, 1, ifd1 + 2 + 12 * 3 + 4),
               (0x0202, 4, 1, len(thumbnail))]  # a SHORT value sits in the first two of its four bytes
    block = struct.pack(order + "H", len(entries)) + b"".join(struct.pack(order + "HHII", *e) for e in entries) + b"\0" * 4
    struct.pack_into(order + "I", tiff, next_pointer, ifd1)
    return exif[:6] + bytes(tiff) + block + thumbnail


def photoshop_iptc(caption: bytes) -> bytes:
    """A JPEG APP13 segment with one IPTC-IIM record (2:120, caption)."""
    record = b"\x1c\x02\x78" + struct.pack(">H", len(caption)) + caption
    resource = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(record)) + record + b"\x00" * (len(record) % 2)
    body = b"Photoshop 3.0\x00" + resource
    return b"\xff\xed" + struct.pack(">H", len(body) + 2) + body


@pytest.mark.parametrize("output_format", ["png", "jpeg", "tiff", "webp", "avif"])
def test_xmp_and_iptc_are_carried_upright_and_the_thumbnail_is_dropped(tmp_path, output_format):
    from PIL import IptcImagePlugin

    thumbnail = io.BytesIO()
    Image.new("RGB", (16, 12), (200, 100, 50)).save(thumbnail, "JPEG")
    source = tmp_path / "camera.jpg"
    Image.fromarray(np.full((30, 40, 3), 90, np.uint8)).save(
        source, exif=exif_with_thumbnail(thumbnail.getvalue()), xmp=XMP_PACKET, extra=photoshop_iptc(IPTC_CAPTION))
    with Image.open(source) as image:  # the source really holds all three
        assert image.getexif().get_ifd(ExifTags.IFD.IFD1) and IptcImagePlugin.getiptcinfo(image)
    decoded = read_image(source)
    output = tmp_path / f"out{FORMAT_SUFFIXES[output_format]}"
    write_image(output, decoded)
    with Image.open(output) as image:
        xmp = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp") or getattr(image, "tag_v2", {}).get(700)
        xmp = xmp.encode() if isinstance(xmp, str) else bytes(xmp)
        assert b"Backlit at dusk" in xmp and b'tiff:Orientation="1"' in xmp
        assert not image.getexif().get_ifd(ExifTags.IFD.IFD1)  # no thumbnail of the unenhanced photo
        assert image.getexif()[ExifTags.Base.Make] == CAMERA_MAKE
        if output_format in ("jpeg", "tiff"):
            assert IptcImagePlugin.getiptcinfo(image)[(2, 120)] == IPTC_CAPTION


def test_an_unparsable_exif_block_is_left_out_and_the_photo_still_written(tmp_path):
    source = tmp_path / "broken-exif.jpg"
    Image.new("RGB", (16, 12), (30, 60, 90)).save(source, exif=b"Exif\x00\x00MM\x00\x2a\x00\x00\xff\xff garbage")
    for suffix in (".png", ".jpg", ".tif"):
        write_image(tmp_path / f"out{suffix}", read_image(source))
        with Image.open(tmp_path / f"out{suffix}") as output:
            assert output.size == (16, 12) and not output.getexif().get(ExifTags.Base.Make)


@pytest.mark.parametrize("option", [["--quality", "0"], ["--quality", "101"], ["--format", "heic"], ["--raw-exposure", "5"],
                                    ["--color-space", "p3"]])
def test_output_and_raw_options_are_checked_before_anything_runs(option, capsys):
    from cliplit.interfaces.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["enhance", "photo.jpg", *option])
    assert exit_info.value.code == 2
    assert option[0] in capsys.readouterr().err
