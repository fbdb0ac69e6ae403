"""The denoising tests' shared parts (importable from every test folder): the quality benchmark's module
(bench/quality.py: scenes, degradations, PSNR), the small generated backlit scene, and the off / auto engines."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT

SPEC = importlib.util.spec_from_file_location("denoise_quality_bench", REPO_ROOT / "bench" / "quality.py")
quality = importlib.util.module_from_spec(SPEC)
sys.modules[SPEC.name] = quality
SPEC.loader.exec_module(quality)

SCENE_WIDTH = 128  # the small case: the synthetic scene, 128 x 96


@pytest.fixture(scope="module")
def clean_scene() -> np.ndarray:
    """The benchmark's synthetic backlit scene, SCENE_WIDTH wide: (96, 128, 3) float32 in [0, 1], the truth."""
    return quality.backlit_scene(quality.SYNTHETIC, SCENE_WIDTH)


@pytest.fixture(scope="module")
def engines(reference_model):
    """`Enhancer`s of the reference model with denoise "off" and "auto"."""
    from cliplit.engine.enhancer import Enhancer

    return {setting: Enhancer(reference_model, denoise=setting) for setting in ("off", "auto")}


__all__ = ["SCENE_WIDTH", "clean_scene", "engines", "quality"]
