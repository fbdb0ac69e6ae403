"""Configuration of the CLIP-LIT enhancement network (transformers `PreTrainedConfig`)."""

from __future__ import annotations

from transformers.configuration_utils import PreTrainedConfig

from .architecture import MODEL_TYPE, ArchitectureConfig, validate_architecture

_DEFAULTS = ArchitectureConfig()


class CLIPLITConfig(PreTrainedConfig):
    r"""
    Configuration of [`CLIPLITModel`], the illumination-estimation network of CLIP-LIT
    (Liang et al., "Iterative Prompt Learning for Unsupervised Backlit Image Enhancement", ICCV 2023).

    The defaults (those of `cliplit.model.architecture.ArchitectureConfig`) reproduce the published
    network (278,790 parameters).

    Args:
        num_channels (`int`, *optional*, defaults to 3):
            Channels of the input image (RGB).
        hidden_size (`int`, *optional*, defaults to 32):
            Width of the outer stages (stem, first and last residual blocks, pyramid pooling).
        expanded_hidden_size (`int`, *optional*, defaults to 64):
            Width of the two middle residual blocks.
        pyramid_bins (`list[int]`, *optional*, defaults to `[1, 2, 3, 6]`):
            Output sizes of the adaptive average pools of the pyramid pooling module.
        pyramid_reduction_size (`int`, *optional*, defaults to 8):
            Channels of each pooled branch after its 1x1 convolution.
        padding_mode (`str`, *optional*, defaults to `"reflect"`):
            Padding of the residual blocks' 3x3 convolutions, and of the four outer ones unless
            `outer_padding_mode` is set (the pyramid fuse convolution always pads with zeros, as in
            the published network).
        outer_padding_mode (`str`, *optional*):
            Padding of the four outer 3x3 convolutions (stem, widening, narrowing, head); `None`
            (default, and in configurations saved before it existed): the same as `padding_mode`.
            The authors train their `_noreflect` network: `padding_mode="reflect"`,
            `outer_padding_mode="zeros"`.
        negative_slope (`float`, *optional*, defaults to 0.2):
            Slope of the leaky ReLUs.
        illumination_channels (`int`, *optional*, defaults to 1):
            Channels of the predicted illumination map (1: one map shared by R, G and B).
        illumination_floor (`float`, *optional*, defaults to 1e-4):
            Lower bound applied to the illumination map before dividing by it, so that no output
            pixel is ever NaN or infinite (the authors divide by a ReLU output that can be 0).
        default_strength (`float`, *optional*, defaults to 1.0):
            Exponent applied to the illumination map: output = clamp(I / L**strength, 0, 1).
            0 leaves the image unchanged, 1 gives the published result.
    """

    model_type = MODEL_TYPE

    def __init__(
        self,
        num_channels: int = _DEFAULTS.num_channels,
        hidden_size: int = _DEFAULTS.hidden_size,
        expanded_hidden_size: int = _DEFAULTS.expanded_hidden_size,
        pyramid_bins=_DEFAULTS.pyramid_bins,
        pyramid_reduction_size: int = _DEFAULTS.pyramid_reduction_size,
        padding_mode: str = _DEFAULTS.padding_mode,
        outer_padding_mode: str | None = _DEFAULTS.outer_padding_mode,
        negative_slope: float = _DEFAULTS.negative_slope,
        illumination_channels: int = _DEFAULTS.illumination_channels,
        illumination_floor: float = _DEFAULTS.illumination_floor,
        default_strength: float = _DEFAULTS.default_strength,
        **kwargs,
    ):
        validate_architecture(
            num_channels, hidden_size, expanded_hidden_size, tuple(pyramid_bins), pyramid_reduction_size,
            padding_mode, outer_padding_mode, negative_slope, illumination_channels, illumination_floor, default_strength,
        )
        self.num_channels = num_channels
        self.hidden_size = hidden_size
        self.expanded_hidden_size = expanded_hidden_size
        self.pyramid_bins = list(pyramid_bins)
        self.pyramid_reduction_size = pyramid_reduction_size
        self.padding_mode = padding_mode
        self.outer_padding_mode = outer_padding_mode
        self.negative_slope = negative_slope
        self.illumination_channels = illumination_channels
        self.illumination_floor = illumination_floor
        self.default_strength = default_strength
        super().__init__(**kwargs)

    def to_architecture(self) -> ArchitectureConfig:
        """The network's hyper-parameters as the plain `ArchitectureConfig` the inference engine uses."""
        return ArchitectureConfig.from_dict(self.to_dict())


__all__ = ["CLIPLITConfig"]
