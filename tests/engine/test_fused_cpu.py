"""The fused CPU pass (oneDNN in-place convolutions, reused buffers, factored pyramid fusion) against the model."""

from __future__ import annotations

import threading

import pytest
import torch
from helpers import random_pixels as random_image

from cliplit.engine.fused_cpu import Workspace
from cliplit.engine.passes import tiled_pass, whole_pass
from cliplit.engine.pyramid import Box
from cliplit.engine.runtime import Runtime
from cliplit.model.architecture import PADDING_VARIANTS
from cliplit.model.configuration_cliplit import CLIPLITConfig
from cliplit.model.modeling_cliplit import CLIPLITModel

# float32 rounding of a different summation order, through 17 layers (measured: ~1e-6 relative)
RELATIVE_TOLERANCE = 1e-5
ODD_SIZES = [(2, 2), (3, 5), (17, 31), (64, 48), (45, 90)]


def eager(model, pixels) -> torch.Tensor:
    with torch.no_grad():
        return model.estimate_illumination(pixels)


def assert_same_map(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=RELATIVE_TOLERANCE, atol=1e-6)


def fused_runtime(model, **kwargs):
    runtime = Runtime(model, **kwargs)
    if runtime.fused is None:
        pytest.skip("oneDNN fused convolutions are not available in this PyTorch build")
    return runtime


@pytest.mark.parametrize("size", ODD_SIZES)
def test_fused_pass_equals_the_model_with_reflection_padding(reference_model, size):
    runtime = fused_runtime(reference_model)
    pixels = random_image(*size)
    assert_same_map(whole_pass(runtime, pixels), eager(reference_model, pixels))


@pytest.mark.parametrize("variant", ["zeros", "noreflect"])
def test_fused_pass_equals_the_model_with_zero_or_mixed_padding(variant):
    torch.manual_seed(0)
    padding_mode, outer_padding_mode = PADDING_VARIANTS[variant]
    model = CLIPLITModel(CLIPLITConfig(padding_mode=padding_mode, outer_padding_mode=outer_padding_mode)).eval()
    model.start_from_identity()
    runtime = fused_runtime(model)
    for size in ODD_SIZES:
        pixels = random_image(*size, seed=1)
        assert_same_map(whole_pass(runtime, pixels), eager(model, pixels))


def test_kept_buffers_never_leak_into_the_next_image(reference_model):
    """Large, then smaller, then differently shaped images through one runtime: each as if alone."""
    runtime = fused_runtime(reference_model, keep_workspace=True)
    images = [random_image(96, 120, seed=2), random_image(40, 33, seed=3), random_image(130, 21, seed=4)]
    for pixels in images:
        assert_same_map(whole_pass(runtime, pixels), eager(reference_model, pixels))
    assert runtime.workspaces.kept is not None
    runtime.release_workspace()
    assert runtime.workspaces.kept is None
    unkept = fused_runtime(reference_model, keep_workspace=False)
    assert_same_map(whole_pass(unkept, images[0]), eager(reference_model, images[0]))
    assert unkept.workspaces.kept is None
    tiled = tiled_pass(runtime, images[0], 48)  # tiles reuse one workspace for both passes
    assert_same_map(tiled, eager(reference_model, images[0]))


def test_factored_pyramid_fusion_equals_the_upsampled_concatenation_on_a_tile(reference_model):
    """The context term computed from the grids equals fusing bilinearly upsampled maps, on an inner box."""
    runtime = fused_runtime(reference_model)
    eager_runtime = Runtime(reference_model, channels_last=False)
    assert eager_runtime.fused is None
    pixels = random_image(70, 90, seed=5)
    height, width = pixels.shape[-2:]
    box = Box(13, 21, 51, 80)
    crop = pixels[:, :, box.top : box.bottom, box.left : box.right]
    with torch.no_grad():
        grids = [grid.float() for grid in reference_model.pyramid_pooling.context(reference_model.encode(pixels))]
    expected = eager_runtime.fuse_decode(eager_runtime.encode(crop), grids, box, height, width)
    with runtime.workspace() as workspace:
        actual = runtime.fuse_decode(runtime.encode(crop, workspace), grids, box, height, width, workspace)
    assert_same_map(actual, expected)


def test_one_runtime_serves_concurrent_threads(reference_model):
    runtime = fused_runtime(reference_model)
    images = [random_image(50 + 7 * i, 61 - 5 * i, seed=10 + i) for i in range(4)]
    expected = [eager(reference_model, pixels) for pixels in images]
    results, errors = [None] * len(images), []

    def work(index):
        try:
            for _ in range(3):
                results[index] = whole_pass(runtime, images[index])
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for actual, wanted in zip(results, expected):
        assert_same_map(actual, wanted)


def test_workspace_views_are_channels_last_and_grow():
    workspace = Workspace()
    small = workspace.buffer("main", 32, 4, 5)
    assert small.shape == (1, 32, 4, 5) and small.is_contiguous(memory_format=torch.channels_last)
    large = workspace.buffer("main", 32, 10, 9)
    assert large.shape == (1, 32, 10, 9) and large.is_contiguous(memory_format=torch.channels_last)
    again = workspace.buffer("main", 32, 4, 5)
    assert again.data_ptr() == large.data_ptr()  # the grown storage is reused, not reallocated
