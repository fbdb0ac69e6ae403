"""The CLIP-LIT enhancement network in plain PyTorch (no transformers).

CLIP-LIT (Liang et al., ICCV 2023) enhances a backlit image I by predicting a per-pixel illumination
map L with a small fully convolutional network and returning clamp(I / L, 0, 1). The network is a
stem convolution, two residual blocks, a pyramid pooling module (PSPNet-style, bins 1, 2, 3, 6), a
widening convolution, two residual blocks, a narrowing convolution, two residual blocks and a
3x3 head followed by a ReLU. All 3x3 convolutions pad by reflection except the pyramid fuse
convolution, which pads with zeros, as in the authors' published model.

`CLIPLITNetworkMixin` builds the layers and defines the forward pass once; `CLIPLITNetwork` (here,
an `nn.Module` configured by an `ArchitectureConfig`) is what the inference engine runs, and
`CLIPLITModel` (`modeling_cliplit.py`, a transformers `PreTrainedModel`) has the same layers under
the same names, so both load the same `model.safetensors`.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from .architecture import ArchitectureConfig, outer_padding, resolve_strength

KERNEL_SIZE = 3
IDENTITY_HEAD_BIAS = 1.0  # see `CLIPLITNetworkMixin.start_from_identity`
FUSE_PADDING_MODE = "zeros"  # the published fuse convolution keeps nn.Conv2d's default padding
BLOCKS_PER_STAGE = 2  # residual blocks in each of the encoder, middle and decoder stages


def conv3x3(in_channels: int, out_channels: int, padding_mode: str, bias: bool) -> nn.Conv2d:
    """A 3x3 convolution, stride 1, that keeps the spatial size."""
    return nn.Conv2d(in_channels, out_channels, KERNEL_SIZE, padding=KERNEL_SIZE // 2, bias=bias, padding_mode=padding_mode)


def receptive_radius(*modules: nn.Module) -> int:
    """Pixels of context on each side that the convolutions in `modules`, applied in sequence, read."""
    return sum(
        (conv.kernel_size[0] // 2) * conv.dilation[0]
        for module in modules
        for conv in module.modules()
        if isinstance(conv, nn.Conv2d)
    )


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
    evaluation can compute them once and reuse them for every tile (see `cliplit.engine.passes`).
    """

    def __init__(self, config):
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


class CLIPLITNetworkMixin:
    """
    The layers and the forward pass of the network, shared by `CLIPLITNetwork` and `CLIPLITModel`
    (an `nn.Module` subclass calls `_build_layers(config)` in its `__init__`). `config` has the fields
    of `ArchitectureConfig`.
    """

    def _build_layers(self, config) -> None:
        hidden, wide, pad, outer, slope = (
            config.hidden_size,
            config.expanded_hidden_size,
            config.padding_mode,
            outer_padding(config),
            config.negative_slope,
        )
        self.stem = conv3x3(config.num_channels, hidden, outer, bias=True)
        self.encoder_blocks = nn.ModuleList(CLIPLITResidualBlock(hidden, pad, slope) for _ in range(BLOCKS_PER_STAGE))
        self.pyramid_pooling = CLIPLITPyramidPooling(config)
        self.expand = conv3x3(hidden, wide, outer, bias=True)
        self.middle_blocks = nn.ModuleList(CLIPLITResidualBlock(wide, pad, slope) for _ in range(BLOCKS_PER_STAGE))
        self.reduce = conv3x3(wide, hidden, outer, bias=True)
        self.decoder_blocks = nn.ModuleList(CLIPLITResidualBlock(hidden, pad, slope) for _ in range(BLOCKS_PER_STAGE))
        self.illumination_head = conv3x3(hidden, config.illumination_channels, outer, bias=True)

    def set_padding(self, padding_mode: str, outer_padding_mode: str | None) -> None:
        """
        Switch the padding of the 3x3 convolutions (weights unchanged) and record it in the config: how
        a network trained as the authors' `_noreflect` variant becomes the all-reflect network they
        evaluate. The pyramid fuse convolution keeps its zero padding.
        """
        if isinstance(self.config, ArchitectureConfig):  # frozen
            self.config = dataclasses.replace(self.config, padding_mode=padding_mode, outer_padding_mode=outer_padding_mode)
        else:
            self.config.padding_mode, self.config.outer_padding_mode = padding_mode, outer_padding_mode
        for conv in (self.stem, self.expand, self.reduce, self.illumination_head):
            conv.padding_mode = outer_padding(self.config)
        for block in (*self.encoder_blocks, *self.middle_blocks, *self.decoder_blocks):
            block.conv1.padding_mode = block.conv2.padding_mode = padding_mode

    @property
    def encoder_radius(self) -> int:
        """Receptive-field radius of `encode` (pixels on each side): 5 for the published network."""
        return receptive_radius(self.stem, self.encoder_blocks)

    @property
    def decoder_radius(self) -> int:
        """Receptive-field radius of the fuse convolution and `decode`: 12 for the published network."""
        return receptive_radius(self.pyramid_pooling.fuse_conv, self.expand, self.middle_blocks, self.reduce,
                                self.decoder_blocks, self.illumination_head)

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
        """
        `pixel_values`: (batch, 3, H, W) in [0, 1] -> illumination map L (batch, 1, H, W), L >= floor.
        Input outside [0, 1] is read as `sanitize_pixels` says, so L is finite for any input.
        """
        return self.illumination_of_valid(sanitize_pixels(pixel_values))

    def illumination_of_valid(self, pixels: torch.Tensor) -> torch.Tensor:
        """`estimate_illumination` for pixels already finite and in [0, 1] (`sanitize_pixels` applied)."""
        return self.decode(self.pyramid_pooling(self.encode(pixels)))

    def resolve_strength(self, strength: float | None = None) -> float:
        """`strength`, or `config.default_strength` when None; a finite number >= 0 (else `ValueError`)."""
        return resolve_strength(self.config, strength)


class CLIPLITNetwork(CLIPLITNetworkMixin, nn.Module):
    """
    The network without transformers, configured by an `ArchitectureConfig`: what the inference engine
    runs. `forward(pixel_values)` returns the illumination map (batch, 1, H, W).
    """

    def __init__(self, config: ArchitectureConfig | None = None):
        super().__init__()
        self.config = config or ArchitectureConfig()
        self._build_layers(self.config)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.estimate_illumination(pixel_values)


def as_network(model: nn.Module) -> CLIPLITNetwork:
    """
    A `CLIPLITNetwork` with the architecture and a copy of the weights of `model` (a `CLIPLITModel` or a
    `CLIPLITNetwork`), in fresh memory: tensors memory-mapped from safetensors can sit at unaligned
    addresses, where CPU convolution kernels take another code path whose rounding differs in the last
    bit, so the copy computes bit-identically to the model that was saved.
    """
    config = model.config if isinstance(model.config, ArchitectureConfig) else ArchitectureConfig.from_dict(model.config.to_dict())
    network = CLIPLITNetwork(config)
    network.load_state_dict({key: value.detach().clone() for key, value in model.state_dict().items()})
    parameter = next(model.parameters())
    return network.to(parameter.device, parameter.dtype).eval()


def sanitize_pixels(pixel_values: torch.Tensor) -> torch.Tensor:
    """
    What the network does with input it was not made for: NaN reads as 0 (black), +inf as 1, -inf as 0,
    and every value is clipped to [0, 1]. One NaN pixel would otherwise spread through the pyramid
    pooling's global averages into every output pixel. Valid input passes unchanged.
    """
    return torch.nan_to_num(pixel_values, nan=0.0, posinf=1.0, neginf=0.0).clamp(0, 1)


def apply_illumination(pixel_values: torch.Tensor, illumination: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """
    The CLIP-LIT image formation: clamp(I / L**strength, 0, 1).

    `pixel_values`: (batch, 3, H, W) in [0, 1]; `illumination`: (batch, 1 or 3, H, W), strictly positive.
    """
    if strength == 0.0:
        return pixel_values.clamp(0, 1)
    # L**strength never reaches 0 (an underflow would make 0 / 0 = NaN): floored at the dtype's smallest normal
    tiny = torch.finfo(illumination.dtype).tiny
    divisor = illumination.clamp_min(tiny) if strength == 1.0 else illumination.pow(strength).clamp_min_(tiny)
    return (pixel_values / divisor).clamp_(0, 1)  # in place: one image-sized allocation, not two


__all__ = [
    "CLIPLITNetwork",
    "CLIPLITNetworkMixin",
    "CLIPLITPyramidPooling",
    "CLIPLITResidualBlock",
    "KERNEL_SIZE",
    "apply_illumination",
    "as_network",
    "sanitize_pixels",
    "conv3x3",
]
