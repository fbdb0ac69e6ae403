"""CLIP-LIT in spandrel, the model loader of chaiNNer and ComfyUI: `install()` adds the architecture to
spandrel's registry at run time (as `spandrel_extra_arches` does), so `spandrel.ModelLoader` detects

- the authors' `.pth` state dicts (CLIP-LIT's `enhancement_model.pth` and the seven RAVE checkpoints),
  with or without the `module.` prefix of `nn.DataParallel`;
- our `model.safetensors` (a `from_pretrained` folder's weights);

and returns an `ImageModelDescriptor` (purpose "Restoration", scale 1). Calling it on a (B, 3, H, W)
tensor in [0, 1] returns the enhanced image (B, 3, H, W) in [0, 1]: the published network's pixels,
computed image by image by cliplit's `Enhancer` in exact mode (whole image, or cliplit's exact tiles when
it does not fit in memory). Its `tiling` is `ModelTiling.INTERNAL`: the pyramid pooling sees the whole
image, so a host must not cut it into tiles itself.

    import spandrel
    from cliplit.integrations.spandrel import install

    install()
    descriptor = spandrel.ModelLoader().load_from_file("enhancement_model.pth")
    enhanced = descriptor(image)  # (1, 3, H, W) in [0, 1]

spandrel gives an architecture the weights only: a model converted with a non-default `config.json`
(padding variant, strength) loads as the published architecture with the sizes its weights have.
"""

from __future__ import annotations

from ..errors import CheckpointError
from ..model.detection import AUTHOR_KEYS, CLIPLIT_KEYS
from . import require_extra

spandrel = require_extra("spandrel", "spandrel", "cliplit.integrations.spandrel")
KeyCondition = require_extra("spandrel.util", "spandrel", "cliplit.integrations.spandrel").KeyCondition

ARCH_ID = "CLIPLIT"
ARCH_NAME = "CLIP-LIT"
MIN_IMAGE_SIDE = 2  # reflection padding needs two pixels; spandrel pads smaller inputs


def architecture_of(state_dict):
    """The `ArchitectureConfig` that a state dict in our naming has: sizes from its tensors, the rest published."""
    from ..model.architecture import DEFAULT_PYRAMID_BINS, ArchitectureConfig

    stages = {key.split(".")[2] for key in state_dict if key.startswith("pyramid_pooling.stages.")}
    if len(stages) != len(DEFAULT_PYRAMID_BINS):
        raise CheckpointError(f"state dict: {len(stages)} pyramid stages; spandrel can load only the published "
                              f"{len(DEFAULT_PYRAMID_BINS)} (load its folder with cliplit instead)")
    stem = state_dict["stem.weight"]
    return ArchitectureConfig(num_channels=stem.shape[1], hidden_size=stem.shape[0],
                              expanded_hidden_size=state_dict["expand.weight"].shape[0],
                              pyramid_reduction_size=state_dict["pyramid_pooling.stages.0.conv.weight"].shape[0],
                              illumination_channels=state_dict["illumination_head.weight"].shape[0])


class EnhanceImages:
    """
    The descriptor's call: (B, 3, H, W) in [0, 1] on the model's device and dtype -> the enhanced images,
    same shape, device and dtype. Each image goes through an `Enhancer` (exact mode) built for the model's
    current device, dtype and weights (rebuilt when the host moves or casts the model).
    """

    def __init__(self):
        self._key = None
        self._enhancer = None

    def enhancer_for(self, model):
        from ..engine.enhancer import Enhancer

        parameter = next(model.parameters())
        key = (parameter.device, parameter.dtype, parameter.data_ptr())
        if key != self._key:
            self._enhancer = Enhancer(model, device=parameter.device, precision=parameter.dtype)
            self._key = key
        return self._enhancer

    def __call__(self, model, image):
        import torch

        from ..model.network import apply_illumination

        enhancer = self.enhancer_for(model)
        outputs = []
        for index in range(image.shape[0]):
            pixels = image[index : index + 1].float()
            illumination = enhancer.illumination(pixels)
            outputs.append(apply_illumination(pixels, illumination, enhancer.strength))
        return torch.cat(outputs).to(image.dtype)


class CLIPLITArch(spandrel.Architecture):
    """The CLIP-LIT enhancement network (CLIP-LIT, ICCV 2023; RAVE, ECCV 2024) as a spandrel architecture."""

    def __init__(self):
        super().__init__(id=ARCH_ID, name=ARCH_NAME,
                         detect=KeyCondition.has_any(KeyCondition.has_all(*AUTHOR_KEYS), KeyCondition.has_all(*CLIPLIT_KEYS)))

    def load(self, state_dict):
        from ..model.conversion import convert_state_dict, rename_author_key
        from ..model.network import CLIPLITNetwork

        renamed = {rename_author_key(key): value for key, value in state_dict.items()}
        architecture = architecture_of(renamed)
        weights = convert_state_dict(renamed, architecture, source="state dict")
        return spandrel.ImageModelDescriptor(
            CLIPLITNetwork(architecture).eval(), weights, architecture=self, purpose="Restoration", tags=[],
            supports_half=True, supports_bfloat16=True, scale=1, input_channels=architecture.num_channels,
            output_channels=architecture.num_channels, size_requirements=spandrel.SizeRequirements(minimum=MIN_IMAGE_SIDE),
            tiling=spandrel.ModelTiling.INTERNAL, call_fn=EnhanceImages(),
        )


def install(registry=None) -> list:
    """
    Add the CLIP-LIT architecture to `registry` (default: spandrel's `MAIN_REGISTRY`, which every
    `ModelLoader()` uses). Safe to call more than once. Returns what was added (empty when already there).
    """
    registry = spandrel.MAIN_REGISTRY if registry is None else registry
    return registry.add(spandrel.ArchSupport.from_architecture(CLIPLITArch()), ignore_duplicates=True)


__all__ = ["ARCH_ID", "CLIPLITArch", "EnhanceImages", "architecture_of", "install"]
