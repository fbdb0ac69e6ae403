"""Configuration of the CLIP-LIT enhancement network."""

from __future__ import annotations

from transformers import PreTrainedConfig

DEFAULT_PYRAMID_BINS = (1, 2, 3, 6)


class CLIPLITConfig(PreTrainedConfig):
    r"""
    Configuration of [`CLIPLITModel`], the illumination-estimation network of CLIP-LIT
    (Liang et al., "Iterative Prompt Learning for Unsupervised Backlit Image Enhancement", ICCV 2023).

    The defaults reproduce the published network (278,790 parameters).

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
            Padding of the 3x3 convolutions (the pyramid fuse convolution always pads with zeros,
            as in the published network). `"zeros"` gives the authors' `_noreflect` variant.
        negative_slope (`float`, *optional*, defaults to 0.2):
            Slope of the leaky ReLUs.
        illumination_channels (`int`, *optional*, defaults to 1):
            Channels of the predicted illumination map (1: one map shared by R, G and B).
        illumination_floor (`float`, *optional*, defaults to 1e-4):
            Lower bound applied to the illumination map before dividing by it, so that no output
            pixel is ever NaN or infinite (the authors divide by a ReLU output that can be 0).
        default_strength (`float`, *optional*, defaults to 1.0):
            Exponent applied to the illumination map by `enhance`: output = clamp(I / L**strength, 0, 1).
            0 leaves the image unchanged, 1 gives the published result.
    """

    model_type = "cliplit"

    def __init__(
        self,
        num_channels: int = 3,
        hidden_size: int = 32,
        expanded_hidden_size: int = 64,
        pyramid_bins=DEFAULT_PYRAMID_BINS,
        pyramid_reduction_size: int = 8,
        padding_mode: str = "reflect",
        negative_slope: float = 0.2,
        illumination_channels: int = 1,
        illumination_floor: float = 1e-4,
        default_strength: float = 1.0,
        **kwargs,
    ):
        if padding_mode not in ("reflect", "zeros", "replicate", "circular"):
            raise ValueError(f"padding_mode must be 'reflect', 'zeros', 'replicate' or 'circular', got {padding_mode!r}")
        if illumination_floor <= 0:
            raise ValueError(f"illumination_floor must be positive, got {illumination_floor}")
        self.num_channels = num_channels
        self.hidden_size = hidden_size
        self.expanded_hidden_size = expanded_hidden_size
        self.pyramid_bins = list(pyramid_bins)
        self.pyramid_reduction_size = pyramid_reduction_size
        self.padding_mode = padding_mode
        self.negative_slope = negative_slope
        self.illumination_channels = illumination_channels
        self.illumination_floor = illumination_floor
        self.default_strength = default_strength
        super().__init__(**kwargs)


__all__ = ["CLIPLITConfig"]
