"""Features for the identity loss (paper Eq. 4): what keeps the enhanced image's content.

The authors compare the features of **CLIP RN101** (OpenAI's weights) at five depths: the stem after
its average pooling and the outputs of the four residual stages (weights 1, 1, 1, 1, 0.5). The
ResNet is loaded with `open_clip` (the Hub repository `timm/resnet101_clip.openai`, or a local folder
holding that repository's files, for machines without network) and run stage by stage; its input is
preprocessed as the authors do for this loss: resized to 224 x 224 bilinearly without antialiasing
(`torchvision.transforms.Resize` on tensors, as in their code) and normalized with CLIP's statistics.

`--identity_model vit` keeps the earlier option: the hidden states of the guidance CLIP's vision
tower at five evenly spaced depths (`CLIPGuidance.image_features`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import CLIPLITError, display_name, first_line
from .clip_guidance import CLIP_MEAN, CLIP_STD, preprocess_for_clip

DEFAULT_IDENTITY_MODEL = "timm/resnet101_clip.openai"
VIT_IDENTITY = "vit"
TRAIN_EXTRA_HINT = 'pip install -e ".[train]"'
RESNET_STAGES = ("layer1", "layer2", "layer3", "layer4")
OPEN_CLIP_CONFIG = "open_clip_config.json"
OPEN_CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")  # open_clip's names, preferred first


def require(module: str):
    """Import a training dependency, or fail with one line that says how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise CLIPLITError(f"{module}: not installed ({first_line(error)}); training needs its extra: {TRAIN_EXTRA_HINT}") from None


class ResNetIdentity(nn.Module):
    """
    A frozen CLIP ModifiedResNet (open_clip's `model.visual`). `forward(images)`: (B, 3, H, W) in [0, 1]
    -> five feature maps [stem (B, 64, 56, 56), layer1 (B, 256, 56, 56), layer2 (B, 512, 28, 28),
    layer3 (B, 1024, 14, 14), layer4 (B, 2048, 7, 7)] for RN101 at 224 px.
    """

    def __init__(self, visual: nn.Module, image_size: int, mean=CLIP_MEAN, std=CLIP_STD):
        super().__init__()
        missing = [name for name in ("conv1", "conv2", "conv3", "avgpool", *RESNET_STAGES) if not hasattr(visual, name)]
        if missing:
            raise CLIPLITError(f"the identity model is not a CLIP ResNet (ModifiedResNet): it has no {', '.join(missing)}")
        self.visual = visual.eval().requires_grad_(False)
        self.image_size = int(image_size)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32), persistent=False)

    @classmethod
    def from_pretrained(cls, spec: str) -> "ResNetIdentity":
        """
        A Hub id or a local folder holding an open_clip model's files (`open_clip_config.json` and its
        weights, `OPEN_CLIP_WEIGHTS`). The weights must be there: open_clip itself would fall back to
        random weights with a warning.
        """
        open_clip = require("open_clip")
        hint = (f"offline, put the files of the Hub repository {DEFAULT_IDENTITY_MODEL} ({OPEN_CLIP_CONFIG}, "
                f"{OPEN_CLIP_WEIGHTS[0]}) in a folder and pass --identity_model FOLDER")
        folder = Path(spec).expanduser()
        if not folder.is_dir():
            from huggingface_hub import snapshot_download

            try:
                folder = Path(snapshot_download(spec, allow_patterns=[OPEN_CLIP_CONFIG, *OPEN_CLIP_WEIGHTS]))
            except Exception as error:  # noqa: BLE001 - huggingface_hub raises many types
                raise CLIPLITError(f"{display_name(spec)}: cannot download the identity model ({first_line(error)}); {hint}") from None
        if not (folder / OPEN_CLIP_CONFIG).is_file() or not any((folder / name).is_file() for name in OPEN_CLIP_WEIGHTS):
            raise CLIPLITError(f"{display_name(folder)}: not an open_clip model folder (needs {OPEN_CLIP_CONFIG} and "
                               f"{' or '.join(OPEN_CLIP_WEIGHTS)}); {hint}")
        try:
            model = open_clip.create_model(f"local-dir:{folder}")
        except Exception as error:  # noqa: BLE001 - open_clip raises many types
            raise CLIPLITError(f"{display_name(folder)}: cannot load the identity model ({first_line(error)})") from None
        size = model.visual.image_size
        mean = getattr(model.visual, "image_mean", None) or CLIP_MEAN
        std = getattr(model.visual, "image_std", None) or CLIP_STD
        return cls(model.visual, size[0] if isinstance(size, (tuple, list)) else size, mean, std)

    def train(self, mode: bool = True) -> "ResNetIdentity":
        """The ResNet stays in eval mode (frozen batch norms) whatever the caller asks."""
        super().train(False)
        return self

    def stem(self, pixels: torch.Tensor) -> torch.Tensor:
        visual = self.visual
        for conv, norm, act in ((visual.conv1, visual.bn1, visual.act1), (visual.conv2, visual.bn2, visual.act2),
                                (visual.conv3, visual.bn3, visual.act3)):
            pixels = act(norm(conv(pixels)))
        return visual.avgpool(pixels)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        pixels = preprocess_for_clip(images, self.mean.to(images.dtype), self.std.to(images.dtype), self.image_size,
                                     antialias=False)
        features = [self.stem(pixels.to(self.visual.conv1.weight.dtype))]
        for stage in RESNET_STAGES:
            features.append(getattr(self.visual, stage)(features[-1]))
        return features


class ViTIdentity(nn.Module):
    """The guidance CLIP's vision hidden states at five depths (`CLIPGuidance.depths`)."""

    def __init__(self, guidance):
        super().__init__()
        self.guidance = [guidance]  # not a submodule: the guidance is prepared and moved by the caller

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.guidance[0].image_features(images, with_hidden_states=True)[1]


def load_identity_model(spec: str, guidance) -> nn.Module:
    """`spec`: a Hub id or folder of an open_clip CLIP ResNet, or "vit" (the guidance CLIP's hidden states)."""
    if spec == VIT_IDENTITY:
        return ViTIdentity(guidance)
    return ResNetIdentity.from_pretrained(spec)


__all__ = ["DEFAULT_IDENTITY_MODEL", "ResNetIdentity", "VIT_IDENTITY", "ViTIdentity", "load_identity_model", "require"]
