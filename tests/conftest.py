"""Shared fixtures: the reference data in ../shared (skipped when absent, a failure under CI=true),
models converted from it, and a tiny random CLIP. Helpers live in `helpers.py` (importable from every
test folder: `pythonpath = ["tests"]` in pyproject.toml)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["denoise_scenes"]  # the denoising tests' scene and engines (tests/denoise_scenes.py)

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_ENV_VAR = "CLIPLIT_SHARED"  # another place for ../shared (the GPU check carries it into the checkout: docs/speed.md)
SHARED_REFERENCE = Path(os.environ.get(SHARED_ENV_VAR) or REPO_ROOT.parent / "shared") / "reference"
CLIPLIT_REFERENCE = SHARED_REFERENCE / "clip-lit"
RAVE_REFERENCE = SHARED_REFERENCE / "rave"
ENHANCEMENT_CHECKPOINT = CLIPLIT_REFERENCE / "enhancement_model.pth"
INIT_CHECKPOINT = CLIPLIT_REFERENCE / "init_enhancement_model.pth"
RAVE_CHECKPOINT = RAVE_REFERENCE / "rave_unpaired.pth"
REFERENCE_IMAGES = sorted((CLIPLIT_REFERENCE / "images").glob("*.jpg"))
GOLDEN_DIR = CLIPLIT_REFERENCE / "golden"
FULL_TESTS_ENV_VAR = "CLIPLIT_FULL_TESTS"
REFERENCE_MARK = "reference"
SLOW_MARK = "slow"
GPU_MARK = "gpu"
MISSING_REFERENCE = f"{SHARED_REFERENCE}: reference data missing (the authors' checkpoints and photos in ../shared)"


def reference_available() -> bool:
    return ENHANCEMENT_CHECKPOINT.is_file() and bool(REFERENCE_IMAGES)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_reference() -> None:
    """Skip the calling test when ../shared is absent; under CI=true its absence is a failure."""
    if reference_available():
        return
    if in_ci():
        pytest.fail(MISSING_REFERENCE + " (CI=true: required)", pytrace=False)
    pytest.skip(MISSING_REFERENCE)


def pytest_configure(config):
    config.addinivalue_line("markers", f"{REFERENCE_MARK}: needs the reference data in ../shared (skipped without it)")
    config.addinivalue_line("markers", f"{SLOW_MARK}: starts a process or server, a browser, accelerate launch, Ray, a "
                                       "training run, a soak or a 24 MP image (left out of the fast loop: -m 'not slow')")
    config.addinivalue_line("markers", f"{GPU_MARK}: needs CUDA (skipped with the reason on a machine without it)")
    if in_ci() and not reference_available():
        raise pytest.UsageError(MISSING_REFERENCE + " (CI=true: the reference data is required)")


def cuda_missing_reason() -> str | None:
    """Why CUDA cannot be used here (None when it can)."""
    import torch

    if not torch.cuda.is_available():
        return f"needs CUDA: torch {torch.__version__} sees no CUDA device on this machine"
    return None


def pytest_runtest_setup(item):
    if item.get_closest_marker(REFERENCE_MARK) is not None:
        require_reference()
    if item.get_closest_marker(GPU_MARK) is not None:
        reason = cuda_missing_reason()
        if reason:
            pytest.skip(reason)


DOCUMENTATION_TESTS = "tests/docs/test_documentation.py::test_documented_snippet_runs"


def pytest_terminal_summary(terminalreporter):
    """How many documentation snippets ran, and which were skipped with their reasons."""
    reports = [report for outcome in ("passed", "failed", "skipped") for report in terminalreporter.stats.get(outcome, [])
               if report.nodeid.startswith(DOCUMENTATION_TESTS) and (report.when == "call" or report.skipped)]
    if not reports:
        return
    ran = [report for report in reports if not report.skipped]
    skipped = [report for report in reports if report.skipped]
    terminalreporter.write_sep("-", f"documentation snippets: {len(ran)} ran "
                                    f"({sum(report.failed for report in ran)} failed), {len(skipped)} skipped")
    for report in skipped:
        terminalreporter.write_line(f"skipped {report.longrepr[2].removeprefix('Skipped: ')}")


def full_tests_requested() -> bool:
    """True when every reference photo should be checked (CLIPLIT_FULL_TESTS=1)."""
    return os.environ.get(FULL_TESTS_ENV_VAR, "") not in ("", "0", "false")


def smallest_reference_image() -> Path:
    from PIL import Image

    def pixels(path: Path) -> int:
        with Image.open(path) as image:
            return image.width * image.height

    return min(REFERENCE_IMAGES, key=pixels)


def reference_images_to_check() -> list:
    """The smallest reference photo on every run; all of them when CLIPLIT_FULL_TESTS=1 (for parametrize;
    without the reference data, one placeholder that the `reference` mark skips with the reason)."""
    if not REFERENCE_IMAGES:
        return [pytest.param(CLIPLIT_REFERENCE / "images" / "missing.jpg", marks=pytest.mark.reference)]
    return REFERENCE_IMAGES if full_tests_requested() else [smallest_reference_image()]


def golden_for(image: Path) -> Path:
    return GOLDEN_DIR / f"{image.stem}.png"


@pytest.fixture(scope="session")
def reference_model():
    """The authors' published model, converted in memory (transformers `CLIPLITModel`, eval mode, CPU)."""
    require_reference()
    from cliplit.model.conversion import model_from_author_checkpoint

    return model_from_author_checkpoint(ENHANCEMENT_CHECKPOINT)


@pytest.fixture(scope="session")
def converted_model_dir(tmp_path_factory) -> Path:
    """A `from_pretrained` folder converted from the authors' published checkpoint."""
    require_reference()
    from cliplit.model.conversion import convert_checkpoint

    return convert_checkpoint(ENHANCEMENT_CHECKPOINT, tmp_path_factory.mktemp("converted") / "clip-lit")


@pytest.fixture(scope="session")
def published_cache(tmp_path_factory) -> Path:
    """
    A cliplit cache (`$CLIPLIT_CACHE`) holding every published model as after its one download: each
    authors' file from ../shared put in place with `cliplit models add`'s code (its published sha256
    checked, kept in `downloads/`, converted with its provenance record).
    """
    require_reference()
    from helpers import fill_published_cache

    return fill_published_cache(tmp_path_factory.mktemp("cliplit-cache"), [CLIPLIT_REFERENCE, RAVE_REFERENCE])


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A random CLIP-LIT model (its head starting from the identity) in a from_pretrained folder: for the
    tests of files, options and errors, which need no reference data."""
    import torch

    from cliplit import CLIPLITConfig, CLIPLITModel

    folder = tmp_path_factory.mktemp("random-model")
    torch.manual_seed(0)
    model = CLIPLITModel(CLIPLITConfig())
    model.start_from_identity()
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    """A tiny random CLIP (model + tokenizer) written with save_pretrained."""
    from helpers import write_tiny_clip

    return write_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))
