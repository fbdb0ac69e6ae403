"""`python app.py` started as a process, the way a Hugging Face Space and a user start it: with
`--model`, with `$CLIPLIT_MODEL` alone, and with neither (the default `clip-lit` from cliplit's cache,
as after its one download), on ZeroGPU with a stand-in `spaces` package; each answers `/enhance`
through `gradio_client` with the published pixels (and two answer `/enhance_video` too), and stops
cleanly on SIGTERM, removing its files."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT, golden_for, smallest_reference_image
from helpers import PYTHON, free_port, python_env, served_app
from PIL import Image

pytestmark = [pytest.mark.reference, pytest.mark.slow]

APP = "app.py"
MAX_LEVEL_DIFFERENCE = 1  # the published pixels: within one 8-bit level of the authors' own outputs


def pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def assert_published_pixels(url: str) -> None:
    """`/enhance` on the smallest reference photo, through gradio_client, gives the authors' output."""
    from gradio_client import Client, handle_file

    photo = smallest_reference_image()
    result = Client(url, verbose=False).predict(handle_file(str(photo)), api_name="/enhance")
    got, golden = pixels(result), pixels(golden_for(photo))
    assert got.shape == golden.shape
    assert np.abs(got - golden).max() <= MAX_LEVEL_DIFFERENCE


def assert_video_served(url: str, folder: Path) -> None:
    """`/enhance_video` on a small generated clip gives every frame back, at the same times, with its audio."""
    from gradio_client import Client, handle_file
    from video_clips import read_video_frames, stream_packets, write_test_clip

    clip = write_test_clip(folder / "clip.mp4", frames=4, vfr=True)
    video, status = Client(url, verbose=False).predict(handle_file(str(clip)), 1.0, False, True, api_name="/enhance_video")
    assert "4 frames" in status
    assert np.allclose(read_video_frames(video)[1], read_video_frames(clip)[1])
    assert stream_packets(video, "audio") == stream_packets(clip, "audio")


@contextlib.contextmanager
def app_process(tmp_path: Path, args: list[str] = (), **env: str):
    """`python app.py ARGS` from the repository root, with its own temporary folder (`TMPDIR`) so that
    what it leaves behind can be checked; yields the `ServedApp`; asserts a clean stop afterwards."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    port = free_port()
    environment = python_env(TMPDIR=str(scratch), HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", **env)
    if "CLIPLIT_MODEL" not in env:  # the developer's own setting must not leak into the test
        environment.pop("CLIPLIT_MODEL", None)
    with served_app([PYTHON, APP, "--host", "127.0.0.1", "--port", str(port), *args], cwd=REPO_ROOT,
                    env=environment, port=port) as served:
        yield served
    assert served.returncode == 0, served.output
    assert "Traceback" not in served.output, served.output
    files = sorted(str(path.relative_to(scratch)) for path in scratch.rglob("*") if not path.is_dir())
    assert files == [], f"the app left {files} in its temporary folder"  # uploads and results deleted
    assert not list(scratch.glob("cliplit-app*")), "the app left its folders behind"  # (gradio makes an empty one at import)


def test_started_with_model_serves_the_published_pixels_and_stops_cleanly(tmp_path, converted_model_dir):
    with app_process(tmp_path, ["--model", str(converted_model_dir)]) as served:
        assert_published_pixels(served.url)
        assert_video_served(served.url, tmp_path)


def test_started_with_only_the_environment_variable(tmp_path, converted_model_dir):
    with app_process(tmp_path, CLIPLIT_MODEL=str(converted_model_dir)) as served:
        assert_published_pixels(served.url)


def test_started_with_neither_uses_the_cached_default_model(tmp_path, published_cache):
    with app_process(tmp_path, CLIPLIT_CACHE=str(published_cache)) as served:
        assert_published_pixels(served.url)


def test_the_page_works_in_a_browser_against_the_process(tmp_path, published_cache):
    from browser_check import check_page_in_browser

    with app_process(tmp_path, CLIPLIT_CACHE=str(published_cache)) as served:
        check_page_in_browser(served.url, tmp_path)


SPACES_STUB = '''"""Stands in for Hugging Face's `spaces` package: `GPU` records each call of what it decorates."""
import json
import os


def GPU(duration=None):
    def decorate(function):
        def wrapper(*args, **kwargs):
            with open(os.environ["SPACES_STUB_LOG"], "a") as log:
                log.write(json.dumps({"function": function.__name__, "duration": duration}) + "\\n")
            return function(*args, **kwargs)
        return wrapper
    return decorate
'''


def test_zero_gpu_runs_each_enhancement_inside_spaces_gpu(tmp_path, converted_model_dir):
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "spaces.py").write_text(SPACES_STUB)
    log = tmp_path / "gpu_calls.jsonl"
    env = {"SPACES_ZERO_GPU": "1", "SPACES_STUB_LOG": str(log),
           "PYTHONPATH": f"{stub}:{python_env()['PYTHONPATH']}"}
    with app_process(tmp_path, ["--model", str(converted_model_dir)], **env) as served:
        assert not log.exists()  # nothing runs on the GPU before a request
        assert_published_pixels(served.url)
        assert_video_served(served.url, tmp_path)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls[:-1] and all(call == {"function": "_run_model", "duration": 60} for call in calls[:-1])
    assert calls[-1] == {"function": "_run_video", "duration": 120}  # the whole video inside one GPU call
