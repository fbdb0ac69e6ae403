"""`cliplit enhance clip.mp4`: the container kept (frames, timestamps, audio bytes, tags, rotation), the
pixels equal to per-frame enhancement within the codec's loss, odd sizes and 10-bit,
and every bad input refused with one line and nothing written."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ENHANCEMENT_CHECKPOINT
from helpers import process_shares, python_env, run_cli
from PIL import Image
from video_clips import CREATION_TIME, TITLE, read_video_frames, stream_packets, write_test_clip

from cliplit.evaluation.metrics import psnr

av = pytest.importorskip("av", reason="video needs PyAV (the video extra)")
pytestmark = pytest.mark.reference

CODEC_LOSS_PSNR_DB = 38  # enhanced-and-encoded vs enhanced-decoded-frames: x264 at CRF 18 on tiny clips


def cliplit_enhance(*args):
    """`cliplit enhance ARGS --model <the authors' checkpoint> --quiet` in this process."""
    return run_cli("enhance", *args, "--model", ENHANCEMENT_CHECKPOINT, "--quiet")


def test_video_and_image_in_one_batch_keep_frames_timestamps_audio_tags_and_per_frame_pixels(tmp_path, reference_model):
    from cliplit.engine.enhancer import Enhancer

    clip = write_test_clip(tmp_path / "clip.mp4", frames=12, vfr=True, rotation=90)
    Image.fromarray(np.full((24, 32, 3), 60, np.uint8)).save(tmp_path / "photo.png")
    result = cliplit_enhance(clip, tmp_path / "photo.png", "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    output = tmp_path / "out" / "clip.mp4"
    assert (tmp_path / "out" / "photo.png").is_file()
    frames_in, times_in = read_video_frames(clip)
    frames_out, times_out = read_video_frames(output)
    assert len(frames_out) == len(frames_in) == 12
    assert np.allclose(times_out, times_in, atol=1e-3) and len(set(np.round(np.diff(times_in), 3))) > 1  # VFR kept
    assert stream_packets(output, "audio") == stream_packets(clip, "audio")  # audio copied, byte for byte
    with av.open(str(output)) as container:
        video = container.streams.video[0]
        first = next(container.decode(video=0))
        assert (first.width, first.height, first.rotation) == (64, 48, 90)
        assert (video.codec_context.name, video.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert (first.colorspace, first.color_range, first.color_primaries, first.color_trc) == (1, 1, 1, 1)
        assert container.metadata["creation_time"] == CREATION_TIME and container.metadata["title"] == TITLE
    enhancer = Enhancer(reference_model)  # each decoded frame enhanced as an image
    expected = [enhancer.enhance(frame, output_type="np") for frame in frames_in]
    assert min(psnr(a, b) for a, b in zip(frames_out, expected)) > CODEC_LOSS_PSNR_DB
    assert psnr(frames_out[0], frames_in[0]) < 30  # and they are enhanced, not copied

    rerun = cliplit_enhance(clip, "-o", tmp_path / "out", "--strip-metadata")  # other settings: the output is kept, and said
    assert rerun.returncode == 1 and "1 existing output(s) not made with this model and these settings" in rerun.stderr
    stripped = cliplit_enhance(clip, "-o", tmp_path / "out", "--strip-metadata", "--overwrite", "--video-crf", "23")
    assert stripped.returncode == 0, stripped.stderr
    with av.open(str(output)) as container:
        assert "title" not in container.metadata and container.metadata.get("creation_time") != CREATION_TIME
        assert len(list(container.decode(video=0))) == 12
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_file()) == ["clip.mp4", "photo.png"]  # nothing partial


@pytest.mark.parametrize("encoder, pix_fmt, size, expected_fmt", [
    ("libx264", "yuv444p", (65, 47), "yuv444p"),  # odd size: 4:4:4 at the exact size (x264's 4:2:0 needs even sizes)
    ("libx264", "yuv420p10le", (64, 48), "yuv420p10le"),  # 10-bit stays 10-bit
])
def test_odd_sizes_and_10_bit_are_kept(tmp_path, reference_model, encoder, pix_fmt, size, expected_fmt):
    from cliplit.video.enhancer import VideoEnhancer

    clip = write_test_clip(tmp_path / "clip.mkv", frames=6, width=size[0], height=size[1], encoder=encoder, pix_fmt=pix_fmt)
    count = VideoEnhancer(reference_model).enhance_file(clip, tmp_path / "out.mkv")
    assert count == 6
    with av.open(str(tmp_path / "out.mkv")) as container:
        frames = list(container.decode(video=0))
        assert [(f.width, f.height) for f in frames] == [size] * 6
        assert container.streams.video[0].codec_context.pix_fmt == expected_fmt
        assert stream_packets(tmp_path / "out.mkv", "audio") == stream_packets(clip, "audio")


def test_subtitle_and_timecode_streams_are_kept(tmp_path):
    """Subtitles are copied packet for packet; a QuickTime timecode track, which FFmpeg's mov muxer cannot
    take as a copy, is left out with a note and written anew by the muxer from the video's tag."""
    subtitled = write_test_clip(tmp_path / "talk.mkv", frames=6, subtitles=["one", "two", "three"])
    timecoded = write_test_clip(tmp_path / "take.mov", frames=6, timecode="01:02:03:04")
    result = cliplit_enhance(subtitled, timecoded, "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert stream_packets(tmp_path / "out" / "talk.mkv", "subtitles") == stream_packets(subtitled, "subtitles") != []
    assert stream_packets(tmp_path / "out" / "talk.mkv", "audio") == stream_packets(subtitled, "audio")
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "take.mov: stream #2 (data, TimeCodeHandler)" in notes[0], result.stderr
    with av.open(str(tmp_path / "out" / "take.mov")) as container:
        assert [s.type for s in container.streams] == ["video", "audio", "data"]
        assert {s.metadata.get("timecode") for s in container.streams if s.type != "audio"} == {"01:02:03:04"}
        assert len(list(container.decode(video=0))) == 6
    assert stream_packets(tmp_path / "out" / "take.mov", "audio") == stream_packets(timecoded, "audio")
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_file()) == ["take.mov", "talk.mkv"]  # no trial file left


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate is not installed")
def test_accelerate_launch_splits_videos_and_images_across_processes(tmp_path):
    (tmp_path / "in").mkdir()
    clips = [write_test_clip(tmp_path / "in" / f"clip{i}.mp4", frames=4) for i in range(3)]
    Image.fromarray(np.full((24, 32, 3), 60, np.uint8)).save(tmp_path / "in" / "photo.png")
    env = python_env(OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="true")
    launched = subprocess.run(
        ["accelerate", "launch", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
         "--dynamo_backend", "no", "--multi_gpu", "-m", "cliplit", "enhance", str(tmp_path / "in"),
         "--model", str(ENHANCEMENT_CHECKPOINT), "-o", str(tmp_path / "out"), "-q"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert launched.returncode == 0, launched.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_file()) == ["clip0.mp4", "clip1.mp4", "clip2.mp4", "photo.png"]
    assert process_shares(launched.stderr) == {0: 2, 1: 2}, launched.stderr[-2000:]  # each file once, round-robin
    for clip in clips:
        frames, times = read_video_frames(tmp_path / "out" / clip.name)
        assert len(frames) == 4 and np.allclose(times, read_video_frames(clip)[1])


def _corrupt_middle_frame(clip, target):
    data = bytearray(clip.read_bytes())
    with av.open(str(clip)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    position, size = packets[len(packets) // 2]
    data[position + 4 : position + size] = np.random.default_rng(0).integers(0, 256, size - 4, dtype=np.uint8).tobytes()
    target.write_bytes(bytes(data))
    return target


def test_each_bad_video_gets_one_line_and_no_output_while_the_batch_goes_on(tmp_path):
    write_test_clip(tmp_path / "good.mp4", frames=4)
    (tmp_path / "text.mp4").write_text("not a video")
    clip = write_test_clip(tmp_path / "whole.mp4", frames=20)
    (tmp_path / "truncated.mp4").write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    _corrupt_middle_frame(clip, tmp_path / "corrupt.mp4")
    container = av.open(str(tmp_path / "audio_only.mp4"), "w")  # an audio track, no video stream
    sound = container.add_stream("aac", rate=8000, layout="mono")
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
    frame.sample_rate, frame.pts = 8000, 0
    container.mux(sound.encode(frame))
    container.mux(sound.encode())
    container.close()
    container = av.open(str(tmp_path / "no_frames.avi"), "w")  # a video stream without frames (AVI keeps the stream)
    stream = container.add_stream("mpeg4", rate=24)
    stream.width, stream.height = 64, 48
    container.start_encoding()
    container.close()
    write_test_clip(tmp_path / "large.mp4", frames=2, width=160, height=96)  # 0.015 MP
    write_test_clip(tmp_path / "long.mp4", frames=30, fps=10)  # 3 s
    clip.unlink()
    names = ["good", "text", "truncated", "corrupt", "audio_only", "no_frames", "large", "long"]
    files = [tmp_path / (f"{n}.avi" if n == "no_frames" else f"{n}.mp4") for n in names]
    result = cliplit_enhance(*files, "-o", tmp_path / "out", "--max-megapixels", "0.01",
                     "--max-duration", "2")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    reasons = {"text": "not a video", "truncated": "truncated", "corrupt": "cannot be decoded", "audio_only": "no video stream",
               "no_frames": "no decodable video frame", "large": "--max-megapixels", "long": "--max-duration"}
    for name, reason in reasons.items():
        lines = [line for line in errors if f"/{name}." in line]
        assert len(lines) == 1 and reason in lines[0], (name, errors)
    assert "Traceback" not in result.stderr
    assert [p.name for p in (tmp_path / "out").iterdir() if p.is_file()] == ["good.mp4"]


@pytest.mark.slow
def test_sigterm_during_a_video_leaves_no_partial_output(tmp_path):
    clip = write_test_clip(tmp_path / "clip.mp4", frames=400, width=96, height=64)
    output = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "cliplit", "enhance", str(clip), "-o", str(output), "--model",
                                str(ENHANCEMENT_CHECKPOINT), "--quiet"], stderr=subprocess.PIPE, text=True, env=python_env())
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (output.is_dir() and any(output.iterdir())) and process.poll() is None:
        time.sleep(0.05)  # until the partial file is being written
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert not output.exists() or list(output.iterdir()) == []  # an output folder left empty is removed
