"""The identity loss's features: CLIP RN101 stage by stage (open_clip), checked against open_clip's own
forward pass, with random weights built offline."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import write_tiny_resnet_clip

from cliplit.errors import CLIPLITError
from cliplit.training.clip_guidance import CLIP_MEAN, CLIP_STD
from cliplit.training.identity import ResNetIdentity, load_identity_model

open_clip = pytest.importorskip("open_clip", reason="open_clip_torch is in the training extra")
RN101_SHAPES = [(64, 56, 56), (256, 56, 56), (512, 28, 28), (1024, 14, 14), (2048, 7, 7)]


def hooked_maps(visual, pixels):
    """The stem (after its average pooling) and layer1..4 outputs of open_clip's own `visual(pixels)`."""
    maps, handles = [], []
    for name in ("avgpool", "layer1", "layer2", "layer3", "layer4"):
        handles.append(getattr(visual, name).register_forward_hook(lambda module, args, output: maps.append(output)))
    with torch.no_grad():
        visual(pixels)
    for handle in handles:
        handle.remove()
    return maps


def test_rn101_features_are_open_clips_own_stage_outputs():
    torch.manual_seed(0)
    model = open_clip.create_model("RN101", pretrained=None)
    identity = ResNetIdentity(model.visual, 224)
    images = torch.rand(2, 3, 300, 260)
    with torch.no_grad():
        ours = identity(images)
    pixels = F.interpolate(images, size=(224, 224), mode="bilinear", align_corners=False, antialias=False)
    pixels = (pixels - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    theirs = hooked_maps(model.visual, pixels)
    assert [tuple(t.shape[1:]) for t in ours] == RN101_SHAPES
    for mine, reference in zip(ours, theirs):
        torch.testing.assert_close(mine, reference)


def test_a_local_folder_loads_frozen_and_gradients_reach_the_images(tmp_path):
    folder = write_tiny_resnet_clip(tmp_path / "resnet")
    identity = load_identity_model(str(folder), guidance=None)
    assert isinstance(identity, ResNetIdentity)
    identity.train()
    assert not identity.visual.training and not any(p.requires_grad for p in identity.parameters())
    images = torch.rand(2, 3, 64, 64, requires_grad=True)
    sum(f.square().mean() for f in identity(images)).backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_a_folder_without_weights_or_an_unreachable_id_is_one_line_naming_the_flag(tmp_path, monkeypatch):
    folder = write_tiny_resnet_clip(tmp_path / "resnet")
    (folder / "open_clip_model.safetensors").unlink()
    with pytest.raises(CLIPLITError, match="not an open_clip model folder") as error:
        load_identity_model(str(folder), guidance=None)
    assert "--identity_model FOLDER" in str(error.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(CLIPLITError, match="--identity_model FOLDER") as error:
        load_identity_model("timm/resnet101_clip.openai", guidance=None)
    assert "\n" not in str(error.value)
