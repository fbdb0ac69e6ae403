"""The CLIP-LIT enhancement network.

CLIP-LIT (Liang et al., ICCV 2023) enhances a backlit image I by predicting a per-pixel illumination
map L with a small fully convolutional network and returning clamp(I / L, 0, 1). The network is a
stem convolution, two residual blocks, a pyramid pooling module (PSPNet-style, bins 1, 2, 3, 6), a
widening convolution, two residual blocks, a narrowing convolution, two residual blocks and a
3x3 head followed by a ReLU. All 3x3 convolutions pad by reflection except the pyramid fuse
convolution, which pads with zeros, as in the authors' published model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_cliplit import CLIPLITConfig

KERNEL_SIZE = 3
IDENTITY_HEAD_BIAS = 1.0  # see `CLIPLITModel.start_from_identity`
FUSE_PADDING_MODE = "zeros"  # the published fuse convolution keeps nn.Conv2d's default padding


@dataclass
class CLIPLITOutput(ModelOutput):
    """
    Output of [`CLIPLITModel`].

    Args:
        reconstruction (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
            The enhanced image, clamp(pixel_values / illumination**strength, 0, 1), values in [0, 1].
        illumination (`torch.FloatTensor` of shape `(batch_size, illumination_channels, height, width)`):
            The predicted illumination map L, floored at `config.illumination_floor` (so strictly positive).
    """

    reconstruction: torch.FloatTensor | None = None
    illumination: torch.FloatTensor | None = None


def conv3x3(in_channels: int, out_channels: int, padding_mode: str, bias: bool) -> nn.Conv2d:
    """A 3x3 convolution, stride 1, that keeps the spatial size."""
    return nn.Conv2d(in_channels, out_channels, KERNEL_SIZE, padding=KERNEL_SIZE // 2, bias=bias, padding_mode=padding_mode)


class CLIPLITResidualBlock(nn.Module):
    """Two bias-free 3x3 convolutions with a leaky-ReLU between them and after the skip connection."""

    def __init__(self, channels: int, padding_mode: str, negative_slope: float):
        super().__init__()
        self.conv1 = conv3x3(channels, channels, padding_mode, bias=False)
        self.conv2 = conv3x3(channels, channels, padding_mode, bias=False)
        self.negative_slope = negative_slope

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """`hidden_states`: (batch, channels, height, width) -> same shape."""
        residual = hidden_states
        hidden_states = F.leaky_relu(self.conv1(hidden_states), self.negative_slope)
        hidden_states = self.conv2(hidden_states) + residual
        return F.leaky_relu(hidden_states, self.negative_slope)


class CLIPLITPyramidStage(nn.Module):
    """One pyramid branch: 1x1 bias-free convolution and PReLU, applied to a pooled map."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.activation = nn.PReLU()

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """`pooled`: (batch, in_channels, bin, bin) -> (batch, out_channels, bin, bin)."""
        return self.activation(self.conv(pooled))


class CLIPLITPyramidPooling(nn.Module):
    """
    Pyramid pooling: the features are average-pooled to bin x bin grids, each grid is projected by
    its stage, upsampled bilinearly (align_corners=True) to the full size and concatenated with the
    features; a 3x3 convolution + PReLU fuses them back to `hidden_size` channels.

    The pooled grids depend on the whole image. `context` computes them alone, so that a tiled
    evaluation can compute them once and reuse them for every tile (see `cliplit.tiling`).
    """

    def __init__(self, config: CLIPLITConfig):
        super().__init__()
        self.bins = tuple(config.pyramid_bins)
        self.stages = nn.ModuleList(
            CLIPLITPyramidStage(config.hidden_size, config.pyramid_reduction_size) for _ in self.bins
        )
        fused_channels = config.hidden_size + config.pyramid_reduction_size * len(self.bins)
        self.fuse_conv = conv3x3(fused_channels, config.hidden_size, FUSE_PADDING_MODE, bias=False)
        self.fuse_activation = nn.PReLU()

    def context_from_pooled(self, pooled: list[torch.Tensor]) -> list[torch.Tensor]:
        """Project average-pooled grids (one (batch, hidden, bin, bin) tensor per bin) through the stages."""
        return [stage(grid) for stage, grid in zip(self.stages, pooled)]

    def context(self, features: torch.Tensor) -> list[torch.Tensor]:
        """`features`: (batch, hidden, H, W) -> one (batch, reduction, bin, bin) tensor per bin."""
        return self.context_from_pooled([F.adaptive_avg_pool2d(features, b) for b in self.bins])

    def fuse(self, features: torch.Tensor, upsampled_context: list[torch.Tensor]) -> torch.Tensor:
        """Concatenate features (batch, hidden, h, w) with context maps of the same size and fuse them."""
        return self.fuse_activation(self.fuse_conv(torch.cat([features, *upsampled_context], dim=1)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """`features`: (batch, hidden, H, W) -> (batch, hidden, H, W)."""
        size = features.shape[-2:]
        upsampled = [
            F.interpolate(grid, size=size, mode="bilinear", align_corners=True) for grid in self.context(features)
        ]
        return self.fuse(features, upsampled)


class CLIPLITPreTrainedModel(PreTrainedModel):
    """Weight initialization and the hooks `from_pretrained` / `save_pretrained` need."""

    config_class = CLIPLITConfig
    config: CLIPLITConfig
    base_model_prefix = "cliplit"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = False

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """As in transformers; the weights are then copied out of safetensors' memory map (see below)."""
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        model._own_weight_memory()
        return loaded

    @torch.no_grad()
    def _own_weight_memory(self) -> None:
        """
        Copy every parameter into freshly allocated (64-byte aligned) memory. Tensors memory-mapped from
        safetensors can sit at unaligned addresses, where CPU convolution kernels take another code path
        whose float rounding differs in the last bit; owning the memory makes a reloaded model compute
        bit-identically to the one that was saved.
        """
        for tensor in list(self.parameters()) + list(self.buffers()):
            tensor.data = tensor.data.clone()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # The authors initialize convolutions with N(0, 0.02); PReLU keeps its 0.25 default.
        if isinstance(module, nn.Conv2d):
            module.weight.normal_(0.0, 0.02)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.PReLU):
            module.weight.fill_(0.25)


class CLIPLITModel(CLIPLITPreTrainedModel):
    """
    The CLIP-LIT enhancement network: predicts an illumination map L for an image I in [0, 1] and
    returns clamp(I / L**strength, 0, 1).

    Example:

    ```python
    >>> from PIL import Image
    >>> from cliplit import CLIPLITModel
    >>> model = CLIPLITModel.from_pretrained("path/or/hub-id")
    >>> enhanced = model.enhance(Image.open("backlit.jpg"))
    ```
    """

    def __init__(self, config: CLIPLITConfig):
        super().__init__(config)
        hidden, wide, pad, slope = (
            config.hidden_size,
            config.expanded_hidden_size,
            config.padding_mode,
            config.negative_slope,
        )
        self.stem = conv3x3(config.num_channels, hidden, pad, bias=True)
        self.encoder_blocks = nn.ModuleList(CLIPLITResidualBlock(hidden, pad, slope) for _ in range(2))
        self.pyramid_pooling = CLIPLITPyramidPooling(config)
        self.expand = conv3x3(hidden, wide, pad, bias=True)
        self.middle_blocks = nn.ModuleList(CLIPLITResidualBlock(wide, pad, slope) for _ in range(2))
        self.reduce = conv3x3(wide, hidden, pad, bias=True)
        self.decoder_blocks = nn.ModuleList(CLIPLITResidualBlock(hidden, pad, slope) for _ in range(2))
        self.illumination_head = conv3x3(hidden, config.illumination_channels, pad, bias=True)
        self.post_init()

    @torch.no_grad()
    def start_from_identity(self) -> None:
        """
        Make a freshly initialized network start near the identity (L close to 1, output close to the
        input) by setting the illumination head's bias to 1. With the N(0, 0.02) initialization alone
        the map starts near 0, the floored output is white everywhere and no gradient flows; training
        from scratch calls this before the reconstruction stage.
        """
        self.illumination_head.bias.fill_(IDENTITY_HEAD_BIAS)

    # The forward pass in three parts, so that tiled inference can run the pyramid context apart.
    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`pixel_values`: (batch, 3, H, W) in [0, 1] -> features before pyramid pooling (batch, hidden, H, W)."""
        hidden_states = F.leaky_relu(self.stem(pixel_values), self.config.negative_slope)
        for block in self.encoder_blocks:
            hidden_states = block(hidden_states)
        return hidden_states

    def decode(self, fused: torch.Tensor) -> torch.Tensor:
        """Pyramid-fused features (batch, hidden, H, W) -> floored illumination map (batch, 1, H, W)."""
        hidden_states = self.expand(fused)
        for block in self.middle_blocks:
            hidden_states = block(hidden_states)
        hidden_states = self.reduce(hidden_states)
        for block in self.decoder_blocks:
            hidden_states = block(hidden_states)
        # ReLU then floor is a single clamp: max(relu(x), eps) == max(x, eps) for eps > 0.
        return self.illumination_head(hidden_states).clamp_min(self.config.illumination_floor)

    def estimate_illumination(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`pixel_values`: (batch, 3, H, W) in [0, 1] -> illumination map L (batch, 1, H, W), L >= floor."""
        return self.decode(self.pyramid_pooling(self.encode(pixel_values)))

    def forward(
        self,
        pixel_values: torch.Tensor,
        strength: float | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> CLIPLITOutput | tuple[torch.Tensor, torch.Tensor]:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, height, width)`):
                RGB images with values in [0, 1] (see [`CLIPLITImageProcessor`]).
            strength (`float`, *optional*, defaults to `config.default_strength`):
                Exponent of the illumination map: 0 returns the input, 1 the published enhancement.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        illumination = self.estimate_illumination(pixel_values)
        reconstruction = apply_illumination(pixel_values, illumination, self.resolve_strength(strength))
        if not return_dict:
            return reconstruction, illumination
        return CLIPLITOutput(reconstruction=reconstruction, illumination=illumination)

    def resolve_strength(self, strength: float | None) -> float:
        """`strength`, or `config.default_strength` when None; must be a non-negative number."""
        strength = self.config.default_strength if strength is None else float(strength)
        if not strength >= 0:
            raise ValueError(f"strength must be a non-negative number, got {strength}")
        return strength

    def enhance(self, image, strength: float | None = None, **enhance_kwargs):
        """
        Enhance one image (PIL image, numpy array HxWxC, or tensor CxHxW in [0, 1]) and return a PIL image.

        Alpha is kept aside and put back, grayscale stays grayscale, 16-bit input gives 16-bit output.
        Extra keyword arguments (for example `mode="fast"` or `tile_size=`) go to
        [`cliplit.inference.enhance_image`].
        """
        from .inference import enhance_image

        return enhance_image(self, image, strength=self.resolve_strength(strength), **enhance_kwargs)


def apply_illumination(pixel_values: torch.Tensor, illumination: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """
    The CLIP-LIT image formation: clamp(I / L**strength, 0, 1).

    `pixel_values`: (batch, 3, H, W) in [0, 1]; `illumination`: (batch, 1 or 3, H, W), strictly positive.
    """
    if strength == 1.0:
        return (pixel_values / illumination).clamp(0, 1)
    if strength == 0.0:
        return pixel_values.clamp(0, 1)
    return (pixel_values / illumination.pow(strength)).clamp(0, 1)


__all__ = ["CLIPLITModel", "CLIPLITPreTrainedModel", "CLIPLITOutput", "apply_illumination"]
