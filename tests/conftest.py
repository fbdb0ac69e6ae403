"""Shared fixtures: paths to the reference data in ../shared and models converted from it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_REFERENCE = REPO_ROOT.parent / "shared" / "reference"
CLIPLIT_REFERENCE = SHARED_REFERENCE / "clip-lit"
ENHANCEMENT_CHECKPOINT = CLIPLIT_REFERENCE / "enhancement_model.pth"
INIT_CHECKPOINT = CLIPLIT_REFERENCE / "init_enhancement_model.pth"
RAVE_CHECKPOINT = SHARED_REFERENCE / "rave" / "rave_unpaired.pth"
REFERENCE_IMAGES = sorted((CLIPLIT_REFERENCE / "images").glob("*.jpg"))
GOLDEN_DIR = CLIPLIT_REFERENCE / "golden"
FULL_TESTS_ENV_VAR = "CLIPLIT_FULL_TESTS"


def full_tests_requested() -> bool:
    """True when every reference photo should be checked (CLIPLIT_FULL_TESTS=1)."""
    return os.environ.get(FULL_TESTS_ENV_VAR, "") not in ("", "0", "false")


def smallest_reference_image() -> Path:
    from PIL import Image

    def pixels(path: Path) -> int:
        with Image.open(path) as image:
            return image.width * image.height

    return min(REFERENCE_IMAGES, key=pixels)


def reference_images_to_check() -> list[Path]:
    """The smallest reference photo on every run; all of them when CLIPLIT_FULL_TESTS=1."""
    if not REFERENCE_IMAGES:
        return []
    return REFERENCE_IMAGES if full_tests_requested() else [smallest_reference_image()]


def golden_for(image: Path) -> Path:
    return GOLDEN_DIR / f"{image.stem}.png"


def pytest_configure(config):
    if not ENHANCEMENT_CHECKPOINT.is_file():
        raise pytest.UsageError(f"{ENHANCEMENT_CHECKPOINT}: reference data missing; the tests need ../shared beside the checkout")


@pytest.fixture(scope="session")
def reference_model():
    """The authors' published model, converted in memory (eval mode, CPU)."""
    from cliplit.convert import model_from_author_checkpoint

    return model_from_author_checkpoint(ENHANCEMENT_CHECKPOINT)


@pytest.fixture(scope="session")
def converted_model_dir(tmp_path_factory) -> Path:
    """A `from_pretrained` folder converted from the authors' published checkpoint."""
    from cliplit.convert import convert_checkpoint

    return convert_checkpoint(ENHANCEMENT_CHECKPOINT, tmp_path_factory.mktemp("converted") / "clip-lit")
