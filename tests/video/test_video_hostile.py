"""Hostile videos (issue 28), through `cliplit enhance` in this process with a random model: frames that grow
past the limits mid-stream or change size, photos named like videos, a truncated Matroska file, a WebM
with the default codec, CRFs no encoder takes, SVT-AV1's banner under `-q`, and `-o clip.mp4`. Each gets
the documented result or one line, nothing half-written, and no frame resized without a word."""

from __future__ import annotations

import contextlib
import io
from fractions import Fraction

import numpy as np
import pytest
from helpers import error_lines, run_cli
from photo_files import CAMERA_MAKE, display_p3_profile, write_camera_jpeg
from PIL import Image
from video_clips import read_video_frames, write_resizing_clip, write_test_clip

av = pytest.importorskip("av", reason="video needs PyAV (the video extra)")

SMALL, LARGE = (64, 48), (800, 600)  # 0.003 MP, then 0.48 MP: over a 0.1 MP limit
GROWING = [SMALL] * 3 + [LARGE] * 2


def load_random_network(model_dir):
    """The random test model (`model_dir`) as `VideoEnhancer` takes it."""
    from cliplit.model.loading import load_network

    return load_network(str(model_dir))


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_frames_growing_mid_stream_meet_the_limit_and_are_never_squeezed(tmp_path, model_dir, suffix):
    clip = write_resizing_clip(tmp_path / f"grow{suffix}", GROWING)
    with av.open(str(clip)) as container:  # the header states the first frame's size
        assert (container.streams.video[0].codec_context.width, container.streams.video[0].codec_context.height) == SMALL
    limited = run_cli("enhance", clip, "--model", model_dir, "-o", tmp_path / "out", "-q", "--max-megapixels", "0.1")
    assert limited.returncode == 1
    assert error_lines(limited) == [f"error: {clip}: frame 4: 800 x 600 pixels per frame (0.48 MP) is over the 0.1 MP "
                                    "limit (--max-megapixels)"]
    unlimited = run_cli("enhance", clip, "--model", model_dir, "-o", tmp_path / "out", "-q")
    assert unlimited.returncode == 1
    [line] = error_lines(unlimited)
    assert line.startswith(f"error: {clip}: frame 4 is 800 x 600 pixels where the frames before it are 64 x 48"), line
    assert not (tmp_path / "out").exists()  # nothing written, not even a partial file


def test_the_duration_limit_holds_for_frames_a_live_recording_states_no_duration_for(tmp_path, model_dir):
    """A Matroska file written to a pipe states no duration: the limit is checked on the frames' own times."""
    path = tmp_path / "live.mkv"

    class Pipe:  # a non-seekable output: the muxer cannot go back to write the duration
        def __init__(self, file):
            self.file = file

        def write(self, data):
            return self.file.write(data)

    with path.open("wb") as file:
        container = av.open(Pipe(file), "w", format="matroska")
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        for index in range(30):  # 3 s
            frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 8 * index, np.uint8), format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, 10)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
        container.close()
    with av.open(str(path)) as container:
        assert container.duration is None and container.streams.video[0].duration is None
    result = run_cli("enhance", path, "--model", model_dir, "-o", tmp_path / "out", "-q", "--max-duration", "1")
    assert result.returncode == 1
    assert error_lines(result) == [f"error: {path}: frame 12 comes at 1.1 s, over the 1 s limit (--max-duration)"]
    assert not (tmp_path / "out").exists()


def test_a_photo_named_like_a_video_is_enhanced_as_a_photo_with_its_metadata(tmp_path, model_dir):
    from cliplit.video.enhancer import VideoEnhancer
    from cliplit.video.reading import VideoError

    jpeg = write_camera_jpeg(tmp_path / "camera.jpg").rename(tmp_path / "camera.mp4")
    png = tmp_path / "scan.mov"
    Image.fromarray(np.full((24, 32, 3), 40, np.uint8)).save(png, format="PNG")
    result = run_cli("enhance", jpeg, png, "--model", model_dir, "-o", tmp_path / "out", "-q")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.name != ".cliplit") == ["camera.png", "scan.png"]
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert notes == [f"note: {jpeg}: is an image (JPEG), not a video: enhanced as an image, into camera.png",
                     f"note: {png}: is an image (PNG), not a video: enhanced as an image, into scan.png"]
    with Image.open(tmp_path / "out" / "camera.png") as output:
        assert output.getexif()[0x010F] == CAMERA_MAKE and output.info["icc_profile"] == display_p3_profile()
    with pytest.raises(VideoError, match=r"camera\.mp4: is an image \(JPEG\), not a video"):  # the Python API: one line
        VideoEnhancer(load_random_network(model_dir)).enhance_file(jpeg, tmp_path / "api.mp4")
    assert not (tmp_path / "api.mp4").exists()


def with_unknown_segment_size(data: bytes) -> bytes:
    """A Matroska file's bytes with its Segment's size field set to "unknown", as a live recording writes it."""
    at = data.index(b"\x18\x53\x80\x67") + 4
    length = 9 - data[at].bit_length()
    return data[:at] + bytes([0xFF >> (length - 1)]) + b"\xff" * (length - 1) + data[at + length :]


def test_a_truncated_matroska_file_gets_the_truncation_line(tmp_path, model_dir):
    whole = write_test_clip(tmp_path / "whole.mkv", frames=48)
    data = whole.read_bytes()
    cut, live = tmp_path / "cut.mkv", tmp_path / "live.mkv"
    cut.write_bytes(data[: len(data) // 2])
    live.write_bytes(with_unknown_segment_size(data[: len(data) // 2]))  # states no size: the frames' times tell
    with av.open(str(live)) as container:
        assert container.streams.video[0].duration is None  # Matroska's stream states none
    result = run_cli("enhance", cut, live, whole, "--model", model_dir, "-o", tmp_path / "out", "-q")
    assert result.returncode == 1
    by_size, by_time = error_lines(result)
    assert by_size == f"error: {cut}: truncated: the file has {len(data) // 2} of the {len(data)} bytes its container states"
    assert by_time.startswith(f"error: {live}: truncated: the frames end at ") and by_time.endswith(" of the 2.00 s the file states")
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name != ".cliplit"] == ["whole.mkv"]  # the complete one is written
    assert len(read_video_frames(tmp_path / "out" / "whole.mkv")[0]) == 48


def test_a_cut_that_loses_frames_before_the_last_one_is_found(tmp_path, model_dir):
    """Packets are stored in decode order: a cut can take B-frames shown before the last P-frame, leaving a
    hole in the middle of the timeline whose last frame still reaches the stated end."""
    whole = write_test_clip(tmp_path / "whole.mkv", frames=8, audio=False)
    data, cut = whole.read_bytes(), tmp_path / "cut.mkv"
    with av.open(str(whole)) as container:
        stated_end = max(frame.pts for frame in container.decode(video=0))
    for end in range(len(data) - 1, len(data) // 2, -1):  # the longest cut whose frames still reach the end
        cut.write_bytes(data[:end])
        with av.open(str(cut)) as container:
            shown = [frame.pts for frame in container.decode(video=0)]
        if 0 < len(shown) < 8 and max(shown) == stated_end:
            break
    else:
        raise AssertionError("no cut leaves a hole: the clip has no B-frames")
    result = run_cli("enhance", cut, "--model", model_dir, "-o", tmp_path / "out", "-q")
    assert error_lines(result) == [f"error: {cut}: truncated: the file has {end} of the {len(data)} bytes its container states"]
    assert not (tmp_path / "out").exists()


def test_a_cut_mp4_is_named_truncated_and_a_trailer_is_not_a_cut(tmp_path, model_dir):
    whole = write_test_clip(tmp_path / "whole.mp4", frames=8, audio=False)
    data, cut, trailer = whole.read_bytes(), tmp_path / "cut.mp4", tmp_path / "trailer.mp4"
    cut.write_bytes(data[:-16])  # its index (moov) is its last box: FFmpeg would find no video stream
    trailer.write_bytes(data + b"\x00\x00\x10\x00SEFT")  # bytes some tools append after the last box
    result = run_cli("enhance", cut, trailer, "--model", model_dir, "-o", tmp_path / "out", "-q")
    assert error_lines(result) == [f"error: {cut}: truncated: the file has {len(data) - 16} of the {len(data)} bytes its container states"]
    assert len(read_video_frames(tmp_path / "out" / "trailer.mp4")[0]) == 8


def test_webm_gets_a_codec_webm_takes_and_a_named_codec_it_cannot_take_is_one_line(tmp_path, model_dir):
    clip = write_test_clip(tmp_path / "clip.webm", frames=4, encoder="libvpx-vp9", audio=False)
    result = run_cli("enhance", clip, "--model", model_dir, "-o", tmp_path / "out", "-q")
    assert result.returncode == 0, result.stderr
    from cliplit.video.encoders import choose_encoder

    with av.open(str(tmp_path / "out" / "clip.webm")) as container:
        assert container.format.name == "matroska,webm"
        chosen = choose_encoder(clip)  # AV1, else VP9: whichever this PyAV's FFmpeg encodes
        assert chosen.codec in ("av1", "vp9") and container.streams.video[0].codec_context.codec.id == av.codec.Codec(chosen.encoder, "w").id
    assert len(read_video_frames(tmp_path / "out" / "clip.webm")[0]) == 4
    named = run_cli("enhance", clip, "--model", tmp_path / "no-model", "-o", tmp_path / "h264", "-q", "--video-codec", "h264")
    assert named.returncode == 1  # refused before the model is looked for (it does not exist)
    assert error_lines(named) == [f"error: {clip}: a .webm file takes av1, vp9, not h264 (--video-codec)"]
    assert not (tmp_path / "h264").exists()


def test_a_crf_is_checked_against_its_codec_before_the_model_loads(tmp_path, model_dir):
    from cliplit.errors import SettingsError
    from cliplit.video.enhancer import VideoEnhancer

    clip = write_test_clip(tmp_path / "clip.mp4", frames=2)
    missing_model = tmp_path / "no-model"
    from cliplit.interfaces.cli import main

    with pytest.raises(SystemExit) as parsed, contextlib.redirect_stderr(io.StringIO()) as usage:
        main(["enhance", str(clip), "--model", str(missing_model), "--video-crf", "1000"])  # no codec takes 1000: argparse
    assert parsed.value.code == 2 and "--video-crf: must be a finite number in [0, 63]" in usage.getvalue()
    hevc = run_cli("enhance", clip, "--model", missing_model, "-o", tmp_path / "out", "--video-codec", "hevc", "--video-crf", "52")
    assert (hevc.returncode, error_lines(hevc)) == (1, ["error: --video-crf 52: hevc takes 0 to 51"])
    svt = run_cli("enhance", clip, "--model", missing_model, "-o", tmp_path / "out", "--video-codec", "av1", "--video-crf", "30.5")
    assert error_lines(svt) == ["error: --video-crf 30.5: av1 takes whole numbers from 0 to 63"]
    auto = run_cli("enhance", clip, "--model", missing_model, "-o", tmp_path / "out", "--video-crf", "55")
    assert error_lines(auto) == [f"error: {clip}: --video-crf 55: h264 takes 0 to 51"]  # auto: H.264 for .mp4
    assert not (tmp_path / "out").exists()
    with pytest.raises(SettingsError, match="--video-crf 52: hevc takes 0 to 51"):  # the Python API, when it is built
        VideoEnhancer(load_random_network(model_dir), codec="hevc", crf=52)


def test_svt_av1_prints_nothing_under_quiet(tmp_path, model_dir, capfd):
    """SVT-AV1 writes its banner to file descriptor 2 itself; `-q` shows nothing, and nothing else is lost."""
    from cliplit.interfaces.cli import main

    clip = write_test_clip(tmp_path / "clip.mp4", frames=3)
    assert main(["enhance", str(clip), "--model", str(model_dir), "-o", str(tmp_path / "out"), "-q", "--video-codec", "av1"]) == 0
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    with av.open(str(tmp_path / "out" / "clip.mp4")) as container:
        assert container.streams.video[0].codec_context.codec.id == av.codec.Codec("libdav1d", "r").id
    assert main(["enhance", str(tmp_path / "missing.mp4"), "--model", str(model_dir), "-o", str(tmp_path / "out2"), "-q"]) == 1
    assert "missing.mp4: no such file" in capfd.readouterr().err  # the redirection left stderr in place


def test_an_output_named_like_a_video_is_refused_like_one_named_like_an_image(tmp_path, model_dir):
    clip = write_test_clip(tmp_path / "clip.mp4", frames=2)
    result = run_cli("enhance", clip, "--model", model_dir, "-o", tmp_path / "clip_enhanced.mp4", "-q")
    assert result.returncode == 1
    [line] = error_lines(result)
    assert "clip_enhanced.mp4: --output names a folder, and this name ends like an image file or a video file (.mp4)" in line
    assert not (tmp_path / "clip_enhanced.mp4").exists()


@pytest.mark.parametrize("encoder", ["mpeg4", "libx264"])
def test_an_avi_keeps_its_frames_in_order_at_their_times(tmp_path, model_dir, encoder):
    """AVI times packets in decode order: an H.264 input with B-frames (reordered frames) decodes with its
    frames' times scrambled, and an H.264 output with B-frames would read back so; both keep each frame's time."""
    path = tmp_path / "old.avi"
    container = av.open(str(path), "w")
    stream = container.add_stream(encoder, rate=24)  # libx264: B-frames, as x264 writes by default
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    for index in range(8):
        frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 25 * index, np.uint8), format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base = index, Fraction(1, 24)
        container.mux(stream.encode(frame))
    container.mux(stream.encode())
    container.close()
    result = run_cli("enhance", path, "--model", model_dir, "-o", tmp_path / "out", "-q")
    assert result.returncode == 0, result.stderr
    frames, times = read_video_frames(tmp_path / "out" / "old.avi")
    assert len(frames) == 8 and np.allclose(np.diff(times), 1 / 24)  # one frame interval apart, in order
    assert [frame.mean() for frame in frames] == sorted(frame.mean() for frame in frames)  # each frame in its place


def test_a_crf_just_over_the_range_is_named_as_given(tmp_path, model_dir):
    clip = write_test_clip(tmp_path / "clip.mp4", frames=2)
    result = run_cli("enhance", clip, "--model", model_dir, "-o", tmp_path / "out", "--video-crf", "51.0000001")
    assert error_lines(result) == [f"error: {clip}: --video-crf 51.0000001: h264 takes 0 to 51"]


@pytest.mark.parametrize("options", [{"batch_size": float("nan")}, {"batch_size": True}, {"batch_size": 2.5},
                                     {"max_megapixels": float("nan")}, {"max_megapixels": 0}, {"max_seconds": -1},
                                     {"max_seconds": float("inf")}, {"crf": True}, {"crf": "18"}, {"crf": float("nan")}])
def test_the_python_api_refuses_numbers_no_video_takes(model_dir, options):
    from cliplit.errors import SettingsError
    from cliplit.video.enhancer import VideoEnhancer

    named = "--video-crf" if "crf" in options else next(iter(options))  # the error names what was wrong
    with pytest.raises(SettingsError, match=named):
        VideoEnhancer(load_random_network(model_dir), **options)
