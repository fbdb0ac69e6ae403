"""Pixel parity with the authors' own inference output (../shared/reference/clip-lit/golden).

Every path a user can take (CLI with the .pth, converted folder, pipeline, Python `enhance`) must
land within one 8-bit level of the golden PNG on every pixel.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ENHANCEMENT_CHECKPOINT, golden_for, reference_images_to_check
from helpers import run_cli
from PIL import Image

import cliplit

pytestmark = pytest.mark.reference

MAX_LEVEL_DIFFERENCE = 1
IMAGES = reference_images_to_check()


def assert_matches_golden(output, image_path) -> None:
    produced = np.asarray(output).astype(np.int16)
    golden = np.asarray(Image.open(golden_for(image_path)).convert("RGB")).astype(np.int16)
    assert produced.shape == golden.shape
    difference = np.abs(produced - golden)
    assert difference.max() <= MAX_LEVEL_DIFFERENCE, (
        f"{image_path.name}: max difference {difference.max()} levels at {np.argwhere(difference > 1)[:3].tolist()}"
    )


@pytest.mark.parametrize("image_path", IMAGES, ids=lambda p: p.stem)
def test_cli_with_authors_checkpoint_matches_golden(image_path, tmp_path):
    result = run_cli("enhance", image_path, "--model", ENHANCEMENT_CHECKPOINT, "--output", tmp_path, "--device", "cpu", "--quiet")
    assert result.returncode == 0, result.stderr
    written = tmp_path / f"{image_path.stem}.png"
    with Image.open(written) as output:
        assert output.mode == "RGB"
        assert_matches_golden(output, image_path)


@pytest.mark.parametrize("image_path", IMAGES, ids=lambda p: p.stem)
def test_from_pretrained_folder_matches_golden(image_path, converted_model_dir):
    model = cliplit.CLIPLITModel.from_pretrained(converted_model_dir)
    network = cliplit.load_network(converted_model_dir)  # what the CLI runs: no transformers
    with Image.open(image_path) as image:
        assert_matches_golden(cliplit.enhance(model, image), image_path)
        assert_matches_golden(cliplit.Enhancer(network).enhance(image), image_path)


@pytest.mark.parametrize("image_path", IMAGES, ids=lambda p: p.stem)
def test_pipeline_matches_golden(image_path, converted_model_dir):
    from transformers import pipeline

    enhancer = pipeline("backlit-enhancement", model=str(converted_model_dir), device="cpu")
    assert_matches_golden(enhancer(str(image_path)), image_path)
    with Image.open(image_path) as image:
        outputs = enhancer([image, image.copy()])
    assert len(outputs) == 2
    for output in outputs:
        assert_matches_golden(output, image_path)


@pytest.mark.parametrize("image_path", IMAGES, ids=lambda p: p.stem)
def test_python_enhance_with_converted_pth_matches_golden(image_path, reference_model):
    with Image.open(image_path) as image:
        assert_matches_golden(cliplit.enhance(reference_model, image), image_path)
        assert_matches_golden(cliplit.enhance(reference_model, np.asarray(image)), image_path)
