"""The demo's "clean the shadows" checkbox: the page and the `enhance` API give the CLI's `--denoise auto` pixels."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import run_cli
from PIL import Image
from test_app import pixels, running_app

pytestmark = [pytest.mark.reference, pytest.mark.slow]  # the app is served on localhost

NOISY_SIDE = 120


@pytest.fixture
def noisy_photo(tmp_path):
    """A small backlit JPEG (an example photo, reduced) with ISO-like noise."""
    import app

    with Image.open(app.EXAMPLES_DIR / "backlit_cat.jpg") as image:
        small = np.asarray(image.convert("RGB").resize((NOISY_SIDE, NOISY_SIDE)), dtype=np.float32)
    noise = np.random.default_rng(0).standard_normal(small.shape) * np.sqrt(0.25 * small + 2)
    path = tmp_path / "noisy.jpg"
    Image.fromarray(np.clip(small + noise + 0.5, 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def test_denoise_checkbox_gives_the_cli_pixels(converted_model_dir, noisy_photo, tmp_path):
    from gradio_client import Client, handle_file

    cli = run_cli("enhance", noisy_photo, "--model", converted_model_dir, "--output", tmp_path / "cli", "--denoise", "auto",
                  "--quiet")
    assert cli.returncode == 0, cli.stderr
    expected = pixels(tmp_path / "cli" / "noisy.png")
    with running_app(converted_model_dir) as url:
        client = Client(url, verbose=False)
        cleaned = pixels(client.predict(handle_file(str(noisy_photo)), 1.0, True, api_name="/enhance"))
        published = pixels(client.predict(handle_file(str(noisy_photo)), 1.0, api_name="/enhance"))  # unchecked by default
    np.testing.assert_array_equal(cleaned, expected)
    assert np.abs(cleaned.astype(int) - published).mean() > 0.5
