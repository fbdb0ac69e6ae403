"""The app's API endpoints (`/enhance`, `/enhance_video`), their functions taken from the page that
`app.build_demo` builds and called in this process, as gradio calls them: the CLI's pixels, strength and
the denoise checkbox passed through, bad uploads and the limits refused with one line naming the upload.
(The same endpoints served on localhost and called through `gradio_client` are the slow tests of
test_app.py, test_app_video.py and test_app_process.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ENHANCEMENT_CHECKPOINT, smallest_reference_image
from helpers import run_cli
from PIL import Image
from test_app_video import SAME_FRAMES_MIN_PSNR_DB

pytestmark = pytest.mark.reference

SMALL_SIDE = 96


def endpoint(demo, name: str):
    return next(block.fn for block in demo.fns.values() if block.api_name == name)


@pytest.fixture(scope="module")
def demo(converted_model_dir):
    import app
    from cliplit.model.loading import load_model

    page = app.build_demo(load_model(converted_model_dir, device="cpu"), max_video_seconds=2.0, max_video_megapixels=0.01)
    yield page
    app.close_demo(page)


@pytest.fixture
def small_photo(tmp_path):
    small = tmp_path / "small.png"
    with Image.open(smallest_reference_image()) as image:
        image.convert("RGB").resize((SMALL_SIDE, SMALL_SIDE)).save(small)
    return small


def pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def test_enhance_gives_the_cli_pixels_and_takes_the_strength_and_the_denoise_checkbox(demo, converted_model_dir, small_photo,
                                                                                      tmp_path):
    enhance = endpoint(demo, "enhance")
    for options, denoise in (([], False), (["--denoise", "auto"], True)):
        cli = run_cli("enhance", small_photo, "--model", converted_model_dir, "-o", tmp_path / f"cli{len(options)}", "-q",
                      *options)
        assert cli.returncode == 0, cli.stderr
        served = enhance(str(small_photo), None, denoise)  # strength left out: the default
        np.testing.assert_array_equal(pixels(served), pixels(tmp_path / f"cli{len(options)}" / "small.png"))
    unchanged = pixels(enhance(str(small_photo), 0.0))
    np.testing.assert_array_equal(unchanged, pixels(small_photo))  # strength 0: I / L**0 = I
    assert pixels(enhance(str(small_photo), 1.0)).astype(float).mean() > unchanged.astype(float).mean()


def test_bad_uploads_get_one_line_naming_the_upload(demo, small_photo, tmp_path):
    import gradio as gr

    enhance = endpoint(demo, "enhance")
    text = tmp_path / "notes.png"
    text.write_text("this is a text file, not an image\n")
    with pytest.raises(gr.Error, match=r"notes\.png: not an image"):
        enhance(str(text))
    data = smallest_reference_image().read_bytes()
    truncated = tmp_path / "half.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(gr.Error, match=r"half\.jpg: .*truncated"):
        enhance(str(truncated))
    assert pixels(enhance(str(small_photo))).shape == (SMALL_SIDE, SMALL_SIDE, 3)  # and the next upload is enhanced


def test_enhance_video_gives_the_cli_frames_and_refuses_the_limits_in_one_line(demo, tmp_path):
    import gradio as gr
    from video_clips import read_video_frames, stream_packets, write_test_clip

    from cliplit.evaluation.metrics import psnr

    pytest.importorskip("av", reason="video needs PyAV (the video extra)")
    enhance_video = endpoint(demo, "enhance_video")
    clip = write_test_clip(tmp_path / "walk.mp4", frames=4, vfr=True)
    served, status = enhance_video(str(clip), 1.0, False, False, progress=lambda *args, **kwargs: None)
    assert "4 frames" in status and "exact mode" in status
    cli = run_cli("enhance", clip, "--model", ENHANCEMENT_CHECKPOINT, "-o", tmp_path / "cli", "-q")
    assert cli.returncode == 0, cli.stderr
    frames, times = read_video_frames(served)
    cli_frames, cli_times = read_video_frames(tmp_path / "cli" / "walk.mp4")
    assert len(frames) == 4 and np.allclose(times, cli_times)  # variable frame rate kept
    assert min(psnr(a, b) for a, b in zip(frames, cli_frames)) > SAME_FRAMES_MIN_PSNR_DB  # x264 is not bit-reproducible
    assert stream_packets(served, "audio") == stream_packets(clip, "audio")
    long_clip = write_test_clip(tmp_path / "long.mp4", frames=72, fps=24)  # 3 s, over the 2 s limit
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    for path, message in ((long_clip, "long.mp4: 3.0 s is over the 2 s limit"), (fake, "fake.mp4: not a video")):
        with pytest.raises(gr.Error) as refused:
            enhance_video(str(path), 1.0, False, False, progress=lambda *args, **kwargs: None)
        text = refused.value.message
        assert text.startswith(message) and "\n" not in text and "/tmp" not in text, text
