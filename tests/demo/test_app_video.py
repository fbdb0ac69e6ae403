"""The app's Video tab (`/enhance_video`), launched on localhost and called through `gradio_client`:
the pixels and container of `cliplit enhance clip.mp4`, strength and fast mode passed through, the
limits and bad uploads refused with one line naming the upload, and progress reported in frames."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import ENHANCEMENT_CHECKPOINT
from helpers import run_cli
from test_app import running_app
from video_clips import read_video_frames, stream_packets, write_test_clip

from cliplit.evaluation.metrics import psnr

pytest.importorskip("av", reason="video needs PyAV (the video extra)")
pytestmark = pytest.mark.reference

# The same frames through x264 twice: its output is not bit-reproducible from run to run (MB-tree; docs/video.md),
# so two encodes are compared by PSNR (measured: 47 dB or more, or identical).
SAME_FRAMES_MIN_PSNR_DB = 40.0


@pytest.fixture(scope="module")
def video_app(converted_model_dir):
    with running_app(converted_model_dir, max_video_seconds=2.0, max_video_megapixels=0.01) as url:
        yield url


def client_for(url):
    from gradio_client import Client

    return Client(url, verbose=False)


def cli_enhance(clip, output, *options):
    result = run_cli("enhance", clip, "--model", ENHANCEMENT_CHECKPOINT, "-o", output, "-q", *options)
    assert result.returncode == 0, result.stderr
    return output / clip.name


@pytest.mark.slow
def test_video_tab_gives_the_cli_video(video_app, tmp_path):
    from gradio_client import handle_file

    clip = write_test_clip(tmp_path / "walk.mp4", frames=8, vfr=True)
    client = client_for(video_app)
    served, status = client.predict(handle_file(str(clip)), 1.0, False, False, api_name="/enhance_video")
    assert os.path.basename(served) == "walk_enhanced.mp4"
    assert "8 frames" in status and "exact mode" in status
    expected = cli_enhance(clip, tmp_path / "cli")
    frames, times = read_video_frames(served)
    cli_frames, cli_times = read_video_frames(expected)
    assert len(frames) == 8 and np.allclose(times, cli_times)  # variable frame rate kept
    assert min(psnr(a, b) for a, b in zip(frames, cli_frames)) > SAME_FRAMES_MIN_PSNR_DB
    assert stream_packets(served, "audio") == stream_packets(clip, "audio")  # the audio, byte for byte

    weaker, _ = client.predict(handle_file(str(clip)), 0.5, False, True, api_name="/enhance_video")  # fast, strength 0.5
    expected_weaker = cli_enhance(clip, tmp_path / "cli-weak", "--strength", "0.5", "--mode", "fast")
    weak_frames, _ = read_video_frames(weaker)
    assert min(psnr(a, b) for a, b in zip(weak_frames, read_video_frames(expected_weaker)[0])) > SAME_FRAMES_MIN_PSNR_DB
    assert np.abs(weak_frames[0].astype(int) - frames[0]).mean() > 2  # the strength took effect ...
    assert psnr(weak_frames[0], frames[0]) < SAME_FRAMES_MIN_PSNR_DB  # ... far beyond what two encodes differ by


@pytest.mark.slow
def test_video_limits_and_bad_uploads_get_one_line(video_app, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    long_clip = write_test_clip(tmp_path / "long.mp4", frames=72, fps=24)  # 3 s, over the 2 s limit
    big_clip = write_test_clip(tmp_path / "big.mp4", frames=2, width=128, height=96)  # 0.012 MP frames, over 0.01
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    expected = {
        long_clip: "long.mp4: 3.0 s is over the 2 s limit",
        big_clip: "big.mp4: 128 x 96 pixels per frame (0.0123 MP) is over the 0.01 MP limit",
        fake: "fake.mp4: not a video",
        notes: "notes.txt: not a video file (one of .mp4",
    }
    client = client_for(video_app)
    for path, message in expected.items():
        with pytest.raises(AppError) as caught:
            client.predict(handle_file(str(path)), 1.0, False, False, api_name="/enhance_video")
        text = str(caught.value)
        assert text.startswith(message) and "\n" not in text and "Traceback" not in text, text
        assert "/tmp" not in text and "--max" not in text  # the upload's own name; no CLI option in the app
    good = write_test_clip(tmp_path / "good.mp4", frames=3)
    video, _ = client.predict(handle_file(str(good)), 1.0, False, False, api_name="/enhance_video")
    assert len(read_video_frames(video)[0]) == 3  # the app keeps serving


def test_progress_is_reported_in_frames(converted_model_dir, tmp_path):
    """The tab's function itself, with a recording progress tracker in place of gradio's."""
    import app
    from cliplit.model.loading import load_model

    demo = app.build_demo(load_model(converted_model_dir, device="cpu"))
    try:
        function = next(block.fn for block in demo.fns.values() if block.api_name == "enhance_video")
        clip = write_test_clip(tmp_path / "clip.mp4", frames=5)
        for _ in range(2):  # each call counts its own frames
            calls = []
            path, status = function(str(clip), 1.0, False, False, progress=lambda value, **kw: calls.append((value, kw)))
            assert [value for value, _ in calls] == [(0, 5), (1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
            assert all(kw["unit"] == "frames" for _, kw in calls)
            assert len(read_video_frames(path)[0]) == 5 and "5 frames" in status
    finally:
        app.close_demo(demo)
