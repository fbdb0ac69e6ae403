"""The app's service (`cliplit.interfaces.service.EnhancementService`) in-process, with a random model: uploads
read within the limits (one-line errors naming the upload), downloads written in each format with the
photo's metadata, the fast preview, the engines built once per settings through its `EnhancerCache`, the
output files' clean-up, a video, ZeroGPU's wrapper applied to exactly the two GPU calls, and (as a process) that
the service imports neither gradio nor `spaces`."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT
from photo_files import CAMERA_MAKE, display_p3_profile, write_camera_jpeg
from PIL import ExifTags, Image

from cliplit import CLIPLITConfig, CLIPLITModel
from cliplit.engine import enhancer as enhancer_module
from cliplit.engine.enhancer import Enhancer
from cliplit.imaging.files import read_image, write_image
from cliplit.interfaces.service import (
    GPU_DURATION_S,
    OUTPUT_MAX_AGE_S,
    PREVIEW_MAX_SIDE,
    VIDEO_GPU_DURATION_S,
    EnhancementService,
    UploadError,
)

UPLOAD_FOLDER = ("gradio", "5e1f0c9a2b")  # where gradio keeps an upload: the messages must not show it
STRENGTH = 1.0


@pytest.fixture(scope="module")
def model():
    """A random CLIP-LIT model starting near the identity (the map close to 1), on the CPU."""
    torch.manual_seed(0)
    network = CLIPLITModel(CLIPLITConfig())
    network.start_from_identity()
    return network.eval()


@pytest.fixture
def service(model, tmp_path):
    service = EnhancementService(model, output_dir=tmp_path / "results")
    yield service
    service.close()


def upload(tmp_path, name: str):
    """The path an upload `name` has on the server (a folder of gradio's)."""
    folder = tmp_path.joinpath(*UPLOAD_FOLDER)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def textured_photo(path, width: int, height: int):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


class RecordingGpu:
    """Stands in for ZeroGPU's `spaces.GPU`: records what it wraps (name, duration) and each call of a wrapped
    function with the number of engines built during it (`builds`: the list `engine_builds` fills)."""

    def __init__(self, builds: list):
        self.builds, self.wrapped, self.calls = builds, [], []

    def __call__(self, function, duration_s):
        self.wrapped.append((function.__name__, duration_s))

        def on_gpu(*args, **kwargs):
            before = len(self.builds)
            try:
                return function(*args, **kwargs)
            finally:
                self.calls.append((function.__name__, len(self.builds) - before))

        return on_gpu


@pytest.fixture
def engine_builds(monkeypatch):
    """Each `Enhancer` built while the test runs, as its settings (the real constructor still runs)."""
    builds = []
    build = enhancer_module.Enhancer.__init__

    def recording_init(self, model, settings=None, **changes):
        build(self, model, settings, **changes)
        builds.append(self.settings)

    monkeypatch.setattr(enhancer_module.Enhancer, "__init__", recording_init)
    return builds


def test_read_checks_the_limits_and_names_the_upload(model, tmp_path):
    photo = textured_photo(upload(tmp_path, "photo.png"), 500, 400)  # 0.2 MP
    size_mb = photo.stat().st_size / (1 << 20)
    assert EnhancementService(model, output_dir=tmp_path / "out").read(photo).size == (500, 400)
    refusals = [
        (dict(max_megapixels=0.1), r"^photo\.png: 500 x 400 pixels \(0\.2 MP\) is over the 0\.1 MP limit"),
        (dict(max_file_mb=size_mb / 2), rf"^photo\.png: the file is {size_mb:.1f} MB, over the {size_mb / 2:g} MB limit$"),
    ]
    for limits, message in refusals:
        with pytest.raises(UploadError, match=message) as caught:
            EnhancementService(model, output_dir=tmp_path / "out", **limits).read(photo)
        assert "\n" not in str(caught.value) and str(tmp_path) not in str(caught.value)  # the upload's own name

    text = upload(tmp_path, "notes.png")
    text.write_text("this is a text file, not an image\n")
    service = EnhancementService(model, output_dir=tmp_path / "out")
    with pytest.raises(UploadError, match=r"^notes\.png: not an image") as caught:
        service.read(text)
    assert "\n" not in str(caught.value) and str(tmp_path) not in str(caught.value)
    with pytest.raises(UploadError, match="^no image was uploaded$"):
        service.read(tmp_path / "missing.jpg")
    tiny = upload(tmp_path, "dot.png")
    Image.new("RGB", (1, 1)).save(tiny)  # readable, but smaller than the engine takes
    with pytest.raises(UploadError, match=r"^dot\.png: the image must be at least 2x2 pixels"):
        service.enhance_file(tiny, STRENGTH)


@pytest.mark.parametrize("output_format, suffix", [("png", ".png"), ("jpeg", ".jpg"), ("tiff", ".tif")])
def test_enhance_file_writes_the_download_with_the_photos_metadata(service, model, tmp_path, output_format, suffix):
    photo = write_camera_jpeg(upload(tmp_path, "IMG_0001.jpg"), size=(64, 48))  # EXIF orientation 6, Display P3
    image, enhanced, illumination, target = service.enhance_file(photo, STRENGTH, output_format)

    assert target.name == f"IMG_0001_enhanced{suffix}" and target.parent.parent == service.output_dir
    assert image.size == enhanced.size == (48, 64) and illumination.shape == (64, 48)  # upright, as the CLI reads it
    expected, _ = Enhancer(model, keep_workspace=False).enhance_decoded(read_image(photo), STRENGTH)
    np.testing.assert_array_equal(enhanced.pixels, expected.pixels)  # what `cliplit enhance` computes
    written = read_image(target)
    if output_format == "tiff":  # the enhanced floats kept at 16 bits, though the upload has 8
        assert written.bit_depth == 16
        assert np.abs(written.pixels - expected.pixels).max() <= 1 / 65535
    else:  # the very file `cliplit enhance --format FORMAT` writes
        write_image(tmp_path / f"cli{suffix}", expected)
        np.testing.assert_array_equal(written.pixels, read_image(tmp_path / f"cli{suffix}").pixels)
    with Image.open(target) as result:
        assert result.getexif().get(ExifTags.Base.Make) == CAMERA_MAKE
        assert result.info.get("icc_profile") == display_p3_profile()
    with pytest.raises(UploadError, match=r"^unknown download format 'gif' \(one of png, jpeg, tiff\)$"):
        service.enhance_file(photo, STRENGTH, "gif")


def test_preview_is_fast_mode_on_the_reduced_image(service, model, tmp_path):
    photo = textured_photo(upload(tmp_path, "wide.png"), 1024, 640)
    small, enhanced, illumination = service.preview(photo, STRENGTH)
    assert small.size == enhanced.size == (PREVIEW_MAX_SIDE, 320) and illumination.shape == (320, PREVIEW_MAX_SIDE)
    assert 0.0 <= small.pixels.min() and small.pixels.max() <= 1.0
    fast, _ = Enhancer(model, mode="fast").enhance_decoded(small, STRENGTH)
    exact, _ = Enhancer(model).enhance_decoded(small, STRENGTH)
    np.testing.assert_array_equal(enhanced.pixels, fast.pixels)
    assert not np.array_equal(fast.pixels, exact.pixels)
    assert not list(service.output_dir.glob("*"))  # a preview writes no file


def test_engines_are_built_once_per_settings_through_the_cache(service, tmp_path, engine_builds):
    photo = textured_photo(upload(tmp_path, "photo.png"), 40, 30)
    for _ in range(2):
        service.enhance_file(photo, STRENGTH)
        service.preview(photo, STRENGTH)
        service.enhance_file(photo, STRENGTH, denoise=True)
    assert [(settings.mode, settings.denoise) for settings in engine_builds] == [("exact", "off"), ("fast", "off"),
                                                                                 ("exact", "auto")]
    assert all(settings.keep_workspace is False and settings.device is None for settings in engine_builds)
    for fast, denoise in [(False, False), (True, False), (False, True), (True, True)]:
        assert service.engine(fast, denoise) is service.engines.get(service.settings(fast, denoise))
    assert len(engine_builds) == 4  # the fast engine that cleans the shadows: built on its first use only
    assert service.device_name == "CPU"


def test_old_outputs_are_deleted_after_their_age_and_close_deletes_everything(service, tmp_path):
    photo = textured_photo(upload(tmp_path, "photo.png"), 24, 16)
    old = service.enhance_file(photo, STRENGTH)[3]
    recent = service.enhance_file(photo, STRENGTH)[3]
    past = time.time() - OUTPUT_MAX_AGE_S - 1
    os.utime(old.parent, (past, past))
    newest = service.enhance_file(photo, STRENGTH)[3]
    assert not old.parent.exists()
    assert recent.is_file() and newest.is_file()
    assert photo.is_file()  # the upload is gradio's to delete
    service.close()
    assert not service.output_dir.exists()


def test_a_video_through_the_service(model, tmp_path):
    pytest.importorskip("av", reason="video needs PyAV (the video extra)")
    from video_clips import read_video_frames, stream_packets, write_test_clip

    service = EnhancementService(model, output_dir=tmp_path / "results", max_video_seconds=1.0)
    clip = write_test_clip(upload(tmp_path, "walk.mp4"), frames=4, vfr=True)
    progress = []
    target, frames, notes = service.enhance_video_file(clip, STRENGTH, fast=True, on_start=progress.append,
                                                       on_frame=lambda: progress.append("frame"))
    assert target.name == "walk_enhanced.mp4" and frames == 4 and notes == []
    assert progress == [4, "frame", "frame", "frame", "frame"]
    enhanced, times = read_video_frames(target)
    original, original_times = read_video_frames(clip)
    assert len(enhanced) == 4 and np.allclose(times, original_times)  # variable frame rate kept
    assert np.abs(enhanced[0].astype(int) - original[0]).mean() > 0  # the frames were enhanced
    assert stream_packets(target, "audio") == stream_packets(clip, "audio")

    long_clip = write_test_clip(upload(tmp_path, "long.mp4"), frames=48, fps=24)  # 2 s, over the 1 s limit
    notes_file = upload(tmp_path, "notes.txt")
    notes_file.write_text("hello")
    refusals = {long_clip: r"^long\.mp4: 2\.0 s is over the 1 s limit", notes_file: r"^notes\.txt: not a video file \(one of \.mp4"}
    for path, message in refusals.items():
        with pytest.raises(UploadError, match=message) as caught:
            service.enhance_video_file(path, STRENGTH, fast=True)
        assert "\n" not in str(caught.value) and str(tmp_path) not in str(caught.value)
    assert [folder.name for folder in service.output_dir.iterdir()] == [target.parent.name]  # nothing left of the refused
    service.close()
    assert not service.output_dir.exists()


def test_the_gpu_wrapper_wraps_exactly_the_gpu_calls(model, tmp_path, engine_builds):
    pytest.importorskip("av", reason="video needs PyAV (the video extra)")
    from video_clips import write_test_clip

    gpu = RecordingGpu(engine_builds)
    service = EnhancementService(model, output_dir=tmp_path / "results", gpu=gpu)
    assert gpu.wrapped == [("_run_model", GPU_DURATION_S), ("_run_video", VIDEO_GPU_DURATION_S)]
    assert gpu.calls == [] and engine_builds == []  # nothing runs on the GPU before a request

    photo = textured_photo(upload(tmp_path, "photo.png"), 40, 30)
    service.read(photo)
    assert gpu.calls == []  # reading an upload needs no GPU
    service.enhance_file(photo, STRENGTH)
    service.enhance_file(photo, STRENGTH)
    service.preview(photo, STRENGTH)
    service.enhance_video_file(write_test_clip(upload(tmp_path, "clip.mp4"), frames=3), STRENGTH, fast=True)
    # each GPU call builds its engine inside the call and keeps none; the whole video is one call
    assert gpu.calls == [("_run_model", 1), ("_run_model", 1), ("_run_model", 1), ("_run_video", 1)]
    assert [(settings.mode, settings.device) for settings in engine_builds] == [("exact", "auto"), ("exact", "auto"),
                                                                                ("fast", "auto"), ("fast", "auto")]
    assert service.device_name == "GPU"
    service.close()


@pytest.mark.slow
def test_the_service_imports_neither_gradio_nor_spaces():
    code = ("import sys, cliplit.interfaces.service; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'gradio', 'spaces', 'av'}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"  # the page (gradio) and ZeroGPU (spaces) are app.py's; PyAV only for a video
