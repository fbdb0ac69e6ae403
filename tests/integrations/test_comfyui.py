"""The ComfyUI nodes, loaded as ComfyUI loads a custom-node folder (the repository's `__init__.py`) and
called as its executor calls them: inputs checked against `INPUT_TYPES`, `FUNCTION` called, outputs
matched to `RETURN_TYPES`; on a batch of 2, with the illumination MASK."""

from __future__ import annotations

import importlib.util
import inspect
import math
import os
import sys

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, smallest_reference_image
from PIL import Image

pytestmark = pytest.mark.reference

CROP_BOXES = ((0, 0, 64, 48), (300, 500, 364, 548))


def load_like_comfyui(folder):
    """What ComfyUI's `nodes.load_custom_node` does with a folder in custom_nodes (V1 node definitions)."""
    module_path = str(folder)
    sys_module_name = module_path.replace(".", "_x_")
    spec = importlib.util.spec_from_file_location(sys_module_name, os.path.join(module_path, "__init__.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[sys_module_name] = module
    spec.loader.exec_module(module)
    return module.NODE_CLASS_MAPPINGS, module.NODE_DISPLAY_NAME_MAPPINGS


def run_node(node_class, **inputs):
    """Check `inputs` against the node's INPUT_TYPES as ComfyUI validates a prompt (an input that the node's
    VALIDATE_INPUTS takes is checked by it instead), then call FUNCTION."""
    declared = node_class.INPUT_TYPES()
    required, optional = declared["required"], declared.get("optional", {})
    assert set(required) <= set(inputs) <= set(required) | set(optional)
    validate = getattr(node_class, "VALIDATE_INPUTS", None)
    validated = set(inspect.getfullargspec(validate).args) & set(inputs) if validate else set()
    if validated:
        verdict = validate(**{name: inputs[name] for name in validated})
        assert verdict is True, verdict
    for name, value in inputs.items():
        kind, options = (required.get(name) or optional[name]) + ({},) * (len(required.get(name) or optional[name]) == 1)
        if name in validated:
            continue
        if isinstance(kind, list):  # a combo
            assert value in kind, name
        elif kind in ("FLOAT", "INT"):
            assert options.get("min", -np.inf) <= value <= options.get("max", np.inf), name
        elif kind == "STRING":
            assert isinstance(value, str)
    outputs = getattr(node_class(), node_class.FUNCTION)(**inputs)
    assert isinstance(outputs, tuple) and len(outputs) == len(node_class.RETURN_TYPES)
    return outputs


@pytest.fixture(scope="module")
def nodes():
    classes, names = load_like_comfyui(REPO_ROOT)
    assert set(classes) == set(names) == {"CLIPLITModelLoader", "CLIPLITEnhance"}
    return classes


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    """ComfyUI's IMAGE: (2, 48, 64, 3) float32 in [0, 1], two crops of a real backlit photo."""
    with Image.open(smallest_reference_image()) as photo:
        crops = [np.asarray(photo.convert("RGB").crop(box), dtype=np.float32) / 255 for box in CROP_BOXES]
    return torch.from_numpy(np.stack(crops))


@pytest.fixture(scope="module")
def model(nodes, converted_model_dir):
    loader = nodes["CLIPLITModelLoader"]
    assert loader.RETURN_TYPES == ("CLIPLIT_MODEL",)
    (handle,) = run_node(loader, model=str(converted_model_dir), device="cpu")
    return handle


def test_enhance_a_batch_of_two_gives_cliplits_pixels_and_the_illumination_mask(nodes, model, batch, converted_model_dir):
    from cliplit import Enhancer, load_network

    node = nodes["CLIPLITEnhance"]
    assert node.RETURN_TYPES == ("IMAGE", "MASK") and "CLIPLIT_MODEL" in node.INPUT_TYPES()["required"]["model"]
    image, mask = run_node(node, model=model, image=batch, strength=1.0, mode="exact")
    assert image.shape == batch.shape and image.dtype == torch.float32
    assert mask.shape == batch.shape[:3] and 0 < mask.min() and mask.max() <= 1
    enhancer = Enhancer(load_network(converted_model_dir))
    for index in range(2):
        pixels = batch[index].permute(2, 0, 1)
        assert torch.equal(image[index], enhancer.enhance(pixels, output_type="pt").permute(1, 2, 0))
        expected = enhancer.illumination(pixels.unsqueeze(0))[0, 0].clamp(max=1)
        assert torch.equal(mask[index], expected)
    assert not torch.equal(image[0], batch[0])


def test_strength_zero_alpha_and_fast_mode(nodes, model, batch):
    node = nodes["CLIPLITEnhance"]
    unchanged, _ = run_node(node, model=model, image=batch, strength=0.0, mode="exact")
    assert torch.equal(unchanged, batch)
    alpha = torch.linspace(0, 1, batch.shape[2])[:, None].expand(*batch.shape[:3], 1)
    rgba = torch.cat([batch, alpha], dim=-1)
    enhanced, _ = run_node(node, model=model, image=rgba, strength=1.0, mode="exact")
    exact_rgb, _ = run_node(node, model=model, image=batch, strength=1.0, mode="exact")
    assert torch.equal(enhanced[..., 3:], alpha) and torch.equal(enhanced[..., :3], exact_rgb)
    fast, _ = run_node(node, model=model, image=batch, strength=1.0, mode="fast")
    assert fast.shape == batch.shape and (fast - exact_rgb).abs().mean() < 0.05


def test_a_missing_model_is_refused_by_validation_in_one_line(nodes):
    from cliplit.errors import CLIPLITError

    loader = nodes["CLIPLITModelLoader"]
    verdict = loader.VALIDATE_INPUTS("./no/such/model.pth")
    assert verdict.startswith("./no/such/model.pth: no such model in") and "\n" not in verdict
    with pytest.raises(CLIPLITError) as raised:  # what the loader says if it runs anyway
        getattr(loader(), loader.FUNCTION)(model="./no/such/model.pth")
    assert str(raised.value) == verdict


def test_an_empty_batch_is_one_line(nodes, model):
    from cliplit.errors import CLIPLITError

    with pytest.raises(CLIPLITError) as raised:
        run_node(nodes["CLIPLITEnhance"], model=model, image=torch.zeros(0, 48, 64, 3), strength=1.0, mode="exact")
    message = str(raised.value)
    assert "the IMAGE input is empty" in message and "(0, 48, 64, 3)" in message and "\n" not in message


@pytest.mark.parametrize("bad", [math.nan, math.inf], ids=["nan", "inf"])
def test_a_nan_or_infinite_pixel_is_refused_with_the_engines_message(nodes, model, batch, bad):
    from cliplit.errors import CLIPLITError
    from cliplit.imaging.codec import decode_array

    with pytest.raises(ValueError) as engine:  # what the engine says of any array with such a value
        decode_array(np.full((2, 2, 3), bad, dtype=np.float32))
    poisoned = batch.clone()
    poisoned[1, 10, 20, 2] = bad
    with pytest.raises(CLIPLITError) as raised:
        run_node(nodes["CLIPLITEnhance"], model=model, image=poisoned, strength=1.0, mode="exact")
    assert str(raised.value) == f"CLIP-LIT Backlit Enhance: image 2 of 2: {engine.value}"


def test_the_nodes_follow_comfyuis_conventions(nodes):
    loader, enhance = nodes["CLIPLITModelLoader"], nodes["CLIPLITEnhance"]
    assert loader.CATEGORY == "loaders"
    for node in (loader, enhance):
        assert node.DESCRIPTION == node.DESCRIPTION.strip() and "  " not in node.DESCRIPTION and "\n" not in node.DESCRIPTION
        assert len(node.OUTPUT_TOOLTIPS) == len(node.RETURN_TYPES) == len(node.RETURN_NAMES)
    assert enhance.INPUT_TYPES()["required"]["strength"][1]["max"] == 4.0  # as --strength
