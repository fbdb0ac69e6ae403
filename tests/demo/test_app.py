"""The demo app (`app.py`): launched on localhost and called through `gradio_client`, as a Space is."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import CLIPLIT_REFERENCE, REPO_ROOT
from helpers import LOCALHOST, free_port, run_cli
from PIL import Image

PHOTO = CLIPLIT_REFERENCE / "images" / "c5b8b4070688114c602b27933c6699b6.jpg"  # the smallest (564x845)
SMALL_SIDE = 96  # a quick request after the bad ones

needs_reference = pytest.mark.reference


@contextlib.contextmanager
def running_app(model_dir: Path, **build_options):
    """Launch `app.build_demo` on a free localhost port; yields its URL and closes it afterwards."""
    import app
    from cliplit.model.loading import load_model

    demo = app.build_demo(load_model(model_dir, device="cpu"), **build_options)
    port = free_port()
    demo.launch(server_name=LOCALHOST, server_port=port, prevent_thread_lock=True, quiet=True, **app.launch_options())
    try:
        yield f"http://{LOCALHOST}:{port}/"
    finally:
        app.close_demo(demo)
        assert not demo.service.output_dir.exists()  # the app deletes its results when it stops


@pytest.fixture(scope="module")
def app_url(converted_model_dir):
    with running_app(converted_model_dir) as url:
        yield url


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


@pytest.mark.slow
def test_import_loads_no_model_and_launches_nothing():
    code = "import app, sys; assert callable(app.build_demo) and callable(app.main); print('imported')"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "imported"
    assert "Running on" not in done.stdout + done.stderr


@pytest.mark.slow
def test_spaces_is_used_only_on_zero_gpu(tmp_path):
    from cliplit.interfaces.service import GPU_DURATION_S, VIDEO_GPU_DURATION_S

    fake = tmp_path / "spaces.py"  # stands in for Hugging Face's `spaces` package
    fake.write_text(
        "WRAPPED = []\n"
        "def GPU(duration=None):\n"
        "    def wrap(fn):\n"
        "        WRAPPED.append(duration)\n"
        "        return fn\n"
        "    return wrap\n"
    )
    code = (
        "import sys, app\n"
        "service = app.new_service(model=None)\n"
        "print(app.ZERO_GPU, getattr(sys.modules.get('spaces'), 'WRAPPED', None) or [])\n"
    )
    outputs = {}
    for marker in ("", "true"):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO_ROOT)]), "SPACES_ZERO_GPU": marker}
        done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        outputs[marker] = done.stdout.strip().splitlines()[-1]
    assert outputs[""] == "False []"  # gradio may import an installed `spaces`; the app wraps nothing
    assert outputs["true"] == f"True [{GPU_DURATION_S}, {VIDEO_GPU_DURATION_S}]"  # photos, videos


@pytest.mark.slow
@needs_reference
def test_enhance_endpoint_gives_the_cli_pixels(client, converted_model_dir, tmp_path):
    from gradio_client import handle_file

    result = client.predict(handle_file(str(PHOTO)), api_name="/enhance")  # strength left out: the default
    assert Path(result).suffix == ".png"

    cli = run_cli("enhance", PHOTO, "--model", converted_model_dir, "--output", tmp_path, "--device", "cpu", "--quiet")
    assert cli.returncode == 0, cli.stderr
    expected = pixels(tmp_path / f"{PHOTO.stem}.png")
    got = pixels(result)
    assert got.shape == expected.shape == (845, 564, 3)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.slow
@needs_reference
def test_strength_is_passed_through(client, tmp_path):
    from gradio_client import handle_file

    small = tmp_path / "small.png"
    with Image.open(PHOTO) as image:
        image.convert("RGB").resize((SMALL_SIDE, SMALL_SIDE)).save(small)
    unchanged = pixels(client.predict(handle_file(str(small)), 0.0, api_name="/enhance"))
    np.testing.assert_array_equal(unchanged, pixels(small))  # strength 0: I / L**0 = I
    enhanced = pixels(client.predict(handle_file(str(small)), 1.0, api_name="/enhance"))
    assert enhanced.astype(float).mean() > unchanged.astype(float).mean()  # a backlit photo gets brighter


@pytest.mark.slow
@needs_reference
def test_bad_uploads_give_a_message_and_the_app_keeps_serving(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    text = tmp_path / "notes.png"
    text.write_text("this is a text file, not an image\n")
    with pytest.raises(AppError, match=r"notes\.png: not an image"):
        client.predict(handle_file(str(text)), api_name="/enhance")

    data = PHOTO.read_bytes()
    truncated = tmp_path / "half.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(AppError, match=r"half\.jpg: .*truncated"):
        client.predict(handle_file(str(truncated)), api_name="/enhance")

    small = tmp_path / "small.jpg"
    with Image.open(PHOTO) as image:
        image.resize((SMALL_SIDE, SMALL_SIDE)).save(small)
    result = client.predict(handle_file(str(small)), api_name="/enhance")
    assert pixels(result).shape == (SMALL_SIDE, SMALL_SIDE, 3)


def test_example_photos_are_ours_and_small():
    import app

    examples = sorted(app.EXAMPLES_DIR.glob("*.jpg"))
    assert len(examples) >= 2
    for path in examples:
        assert path.stat().st_size < 300_000
        with Image.open(path) as image:
            assert min(image.size) >= 256
    assert (app.EXAMPLES_DIR / "make_examples.py").is_file()


def test_preview_is_a_reduced_enhancement(converted_model_dir):
    import app
    from cliplit.interfaces.service import PREVIEW_MAX_SIDE
    from cliplit.model.loading import load_model

    service = app.new_service(load_model(converted_model_dir, device="cpu"))
    example = app.EXAMPLES_DIR / "backlit_cat.jpg"
    small, enhanced, illumination = service.preview(example, 1.0)
    service.close()
    assert max(small.size) == PREVIEW_MAX_SIDE
    assert enhanced.size == small.size and illumination.shape == small.pixels.shape[:2]
    assert 0.0 <= small.pixels.min() and small.pixels.max() <= 1.0
    assert 0.0 <= enhanced.pixels.min() and enhanced.pixels.max() <= 1.0
    assert enhanced.pixels.mean() > small.pixels.mean()  # the backlit example gets brighter


SOAK_WARMUP, SOAK_REQUESTS = 30, 300
SOAK_GROWTH_MB = 40


@pytest.mark.slow
@needs_reference
def test_memory_stays_flat_over_hundreds_of_requests(converted_model_dir, tmp_path):
    """A soak test: the app (in this process) answers a few hundred small requests; its resident memory
    after them is within a few tens of MB of what it was after a warm-up."""
    import psutil
    from gradio_client import Client, handle_file

    small = tmp_path / "small.png"
    with Image.open(PHOTO) as image:
        image.convert("RGB").resize((48, 48)).save(small)
    process = psutil.Process()
    with running_app(converted_model_dir) as url:
        client = Client(url, verbose=False)
        for _ in range(SOAK_WARMUP):
            client.predict(handle_file(str(small)), api_name="/enhance")
        before = process.memory_info().rss
        for _ in range(SOAK_REQUESTS):
            client.predict(handle_file(str(small)), api_name="/enhance")
        after = process.memory_info().rss
    assert (after - before) / (1 << 20) < SOAK_GROWTH_MB, f"{(after - before) / (1 << 20):.1f} MB more after {SOAK_REQUESTS} requests"
