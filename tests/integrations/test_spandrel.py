"""spandrel detects every published checkpoint (the authors' .pth files, with or without `module.`) and our
model.safetensors once `install()` ran, and the descriptor it returns gives cliplit's pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import CLIPLIT_REFERENCE, RAVE_REFERENCE, golden_for, smallest_reference_image
from PIL import Image

spandrel = pytest.importorskip("spandrel")
pytestmark = pytest.mark.reference

AUTHOR_CHECKPOINTS = sorted(CLIPLIT_REFERENCE.glob("*.pth")) + sorted(RAVE_REFERENCE.glob("*.pth"))
MAX_LEVEL_DIFFERENCE = 1
CROP_BOXES = ((0, 0, 70, 52), (200, 300, 270, 352))  # two crops of one size: a batch of 2


@pytest.fixture(scope="module")
def installed():
    from cliplit.integrations.spandrel import install

    install()
    return spandrel.ModelLoader(device="cpu")


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    """(2, 3, 52, 70) float32 in [0, 1]: two crops of a real backlit photo."""
    with Image.open(smallest_reference_image()) as photo:
        crops = [np.asarray(photo.convert("RGB").crop(box), dtype=np.float32) / 255 for box in CROP_BOXES]
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()


def cliplit_pixels(model, batch: torch.Tensor) -> torch.Tensor:
    from cliplit import Enhancer, load_network

    enhancer = Enhancer(load_network(model))
    return torch.stack([enhancer.enhance(image, output_type="pt") for image in batch])


def assert_descriptor(descriptor) -> None:
    from cliplit.integrations.spandrel import ARCH_ID

    assert isinstance(descriptor, spandrel.ImageModelDescriptor)
    assert descriptor.architecture.id == ARCH_ID
    assert (descriptor.purpose, descriptor.scale, descriptor.input_channels, descriptor.output_channels) == ("Restoration", 1, 3, 3)
    assert descriptor.tiling == spandrel.ModelTiling.INTERNAL


def test_seven_rave_checkpoints_and_clip_lits_are_all_there():
    assert len(sorted(RAVE_REFERENCE.glob("*.pth"))) == 7 and (CLIPLIT_REFERENCE / "enhancement_model.pth").is_file()


@pytest.mark.parametrize("checkpoint", AUTHOR_CHECKPOINTS, ids=lambda p: p.stem)
def test_authors_checkpoints_are_detected_and_give_cliplits_pixels(checkpoint, installed, batch):
    descriptor = installed.load_from_file(checkpoint)
    assert_descriptor(descriptor)
    enhanced = descriptor(batch)
    assert enhanced.shape == batch.shape and enhanced.dtype == batch.dtype
    assert torch.equal(enhanced, cliplit_pixels(checkpoint, batch))


def test_state_dict_without_module_prefix_is_detected(installed, batch, tmp_path):
    from cliplit.model.conversion import read_checkpoint

    checkpoint = CLIPLIT_REFERENCE / "enhancement_model.pth"
    prefixed = read_checkpoint(checkpoint)
    assert all(key.startswith("module.") for key in prefixed)
    bare = {key.removeprefix("module."): value for key, value in prefixed.items()}
    torch.save(bare, tmp_path / "bare.pth")
    for descriptor in (installed.load_from_file(tmp_path / "bare.pth"), installed.load_from_state_dict(prefixed)):
        assert_descriptor(descriptor)
        assert torch.equal(descriptor(batch), cliplit_pixels(checkpoint, batch))


def test_our_safetensors_is_detected(installed, batch, converted_model_dir):
    descriptor = installed.load_from_file(converted_model_dir / "model.safetensors")
    assert_descriptor(descriptor)
    assert torch.equal(descriptor(batch), cliplit_pixels(converted_model_dir, batch))


def test_published_pixels_on_a_whole_photo(installed):
    photo_path = smallest_reference_image()
    descriptor = installed.load_from_file(CLIPLIT_REFERENCE / "enhancement_model.pth")
    with Image.open(photo_path) as photo:
        pixels = torch.from_numpy(np.asarray(photo.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)[None]
    produced = np.floor(descriptor(pixels)[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.int16)
    golden = np.asarray(Image.open(golden_for(photo_path)).convert("RGB")).astype(np.int16)
    assert np.abs(produced - golden).max() <= MAX_LEVEL_DIFFERENCE


def test_install_is_idempotent_and_takes_a_registry(batch):
    from cliplit.integrations.spandrel import ARCH_ID, install

    registry = spandrel.ArchRegistry()
    assert len(install(registry)) == 1 and install(registry) == [] and ARCH_ID in registry
    state_dict = spandrel.ModelLoader().load_state_dict_from_file(RAVE_REFERENCE / "rave_unpaired.pth")
    assert spandrel.ModelLoader(registry=registry).load_from_state_dict(state_dict).architecture.id == ARCH_ID
    incomplete = {key: value for key, value in state_dict.items() if not key.startswith("cond_add1")}
    with pytest.raises(spandrel.UnsupportedModelError):
        registry.load(incomplete)


def test_the_host_can_move_and_cast_the_model(installed, batch):
    descriptor = installed.load_from_file(RAVE_REFERENCE / "rave_paired.pth")
    reference = descriptor(batch)
    descriptor.bfloat16()
    lower = descriptor(batch.bfloat16())
    assert lower.dtype == torch.bfloat16 and (lower.float() - reference).abs().max() < 0.05
    descriptor.float()  # the weights keep their bfloat16 rounding
    restored = descriptor(batch)
    assert restored.dtype == torch.float32 and (restored - reference).abs().max() < 0.05
