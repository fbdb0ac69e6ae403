"""The passes that evaluate the network on an image: whole (one pass) or in exact tiles (two passes), and
the choice between them. These drive a runtime (`cliplit.engine.runtime.Runtime`, or anything with the
members of `PassRuntime`) and the pyramid context math (`cliplit.engine.pyramid`); the runtime knows
neither of them.

- `whole_pass`: encode the image, pool its features (`pyramid.average_pooled`), project the pooled
  grids (`pyramid.project`), fuse and decode: the published forward pass.
- `tiled_pass`, for bounded memory at any size: every layer of the network is a 3x3 convolution except
  the pyramid pooling, whose pooled grids see the whole image. So the image is evaluated twice over
  overlapping tiles (`cliplit.engine.tiles`): pass 1 encodes each tile (with the encoder's receptive
  radius of real neighbours) and adds its core's features into the whole image's pooled sums
  (`pyramid.pooled_sums`), which give exactly the whole-image pooled grids; pass 2 encodes each tile
  again (with a halo of encoder + decoder radius), fuses it with the context upsampled at the tile's
  global pixel coordinates, decodes it and writes its core into the output. The radii are counted from
  the network's convolutions, never written by hand.
- `exact_illumination`: the whole pass when it fits in memory (`cliplit.engine.memory`) or `tile_size`
  says so, else the tiled one.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

import torch

from .memory import auto_tile_size
from .pyramid import Box, average_pooled, pooled_averages, pooled_sums, project
from .tiles import plan_tiles

COMPILED_TILE_SIZE = 512  # default tile of a compiled runtime: every image reuses one compiled shape


class PassRuntime(Protocol):
    """What the passes need of a runtime: the network's geometry and its three parts on one device.

    `workspace()` gives the buffers of one image (or None); `encode(pixels, workspace)`: (N, 3, h, w) ->
    features (N, hidden, h, w); `fuse_decode(features, grids, box, height, width, workspace)`: the features of
    the pixels in `box` of a height x width image and the projected pyramid grids -> illumination (N, 1, h, w).
    """

    device: torch.device
    dtype: torch.dtype
    bins: tuple[int, ...]
    encoder_radius: int
    decoder_radius: int
    illumination_channels: int
    compiled: bool
    pyramid_pooling: torch.nn.Module

    def workspace(self) -> AbstractContextManager: ...

    def encode(self, pixels: torch.Tensor, workspace=None) -> torch.Tensor: ...

    def fuse_decode(self, features: torch.Tensor, grids: list[torch.Tensor], box: Box, height: int, width: int,
                    workspace=None) -> torch.Tensor: ...


def _crop(pixels: torch.Tensor, box: Box) -> torch.Tensor:
    return pixels[:, :, box.top : box.bottom, box.left : box.right]


def whole_pass(runtime: PassRuntime, pixels: torch.Tensor) -> torch.Tensor:
    """
    The forward pass on the whole image: `pixels` (N, 3, H, W) in [0, 1] -> illumination (N, 1, H, W) on the
    runtime's device, in its dtype. A batch (N > 1, eager runtimes only) is N images of one size, each pooled
    on its own: the same maps as N single passes.
    """
    height, width = pixels.shape[-2:]
    with torch.inference_mode(), runtime.workspace() as workspace:
        features = runtime.encode(pixels, workspace)
        grids = project(runtime.pyramid_pooling, average_pooled(features, runtime.bins))
        return runtime.fuse_decode(features, grids, Box(0, 0, height, width), height, width, workspace)


def global_pooled(runtime: PassRuntime, pixels: torch.Tensor, tile: int, workspace=None) -> list[torch.Tensor]:
    """
    Pass 1: the adaptive-average-pooled encoder features of the whole image, computed tile by tile.
    `pixels`: (1, 3, H, W) -> one (1, hidden, bin, bin) float32 grid per bin (on the runtime's device).
    """
    height, width = pixels.shape[-2:]
    sums = None
    for item in plan_tiles(height, width, tile, runtime.encoder_radius, balanced=not runtime.compiled):
        features = runtime.encode(_crop(pixels, item.input), workspace)
        rows, cols = item.core.within(item.input)
        partial = pooled_sums(features[:, :, rows, cols], item.core, height, width, runtime.bins)
        sums = partial if sums is None else [s + p for s, p in zip(sums, partial)]
        del features
    return pooled_averages(sums, height, width, runtime.bins)


def tiled_pass(runtime: PassRuntime, pixels: torch.Tensor, tile: int) -> torch.Tensor:
    """
    The illumination map of `pixels` (1, 3, H, W) in [0, 1], computed in tiles of at most tile x tile
    output pixels (plus a halo on inner sides): (1, 1, H, W) float32 on the device of `pixels`, equal
    to the whole-image pass up to float rounding. Peak memory follows `tile`, not H x W.
    """
    if pixels.ndim != 4 or pixels.shape[0] != 1:
        raise ValueError(f"expected pixel_values of shape (1, 3, H, W), got {tuple(pixels.shape)}")
    tile = max(int(tile), 1)
    height, width = pixels.shape[-2:]
    output = torch.empty((1, runtime.illumination_channels, height, width), dtype=torch.float32, device=pixels.device)
    with torch.inference_mode(), runtime.workspace() as workspace:
        grids = project(runtime.pyramid_pooling, global_pooled(runtime, pixels, tile, workspace))
        for item in plan_tiles(height, width, tile, runtime.encoder_radius + runtime.decoder_radius,
                               balanced=not runtime.compiled):
            features = runtime.encode(_crop(pixels, item.input), workspace)
            illumination = runtime.fuse_decode(features, grids, item.input, height, width, workspace)
            del features
            rows, cols = item.core.within(item.input)
            output[:, :, item.core.top : item.core.bottom, item.core.left : item.core.right] = illumination[:, :, rows, cols].float()
    return output


def exact_illumination(runtime: PassRuntime, pixels: torch.Tensor, tile_size: int | None = None) -> torch.Tensor:
    """
    The published network's illumination map of `pixels` (1, 3, H, W) in [0, 1]: (1, 1, H, W) float32.
    `tile_size`: None chooses from the image size and the free memory (a compiled runtime keeps one tile
    shape); 0 forces the whole pass; n uses exact tiles of n x n output pixels.
    """
    height, width = pixels.shape[-2:]
    tile = tile_size
    if tile is None:
        halo = runtime.encoder_radius + runtime.decoder_radius
        tile = auto_tile_size(height, width, runtime.device, runtime.dtype, halo=halo)
        if runtime.compiled:  # one tile shape: compiled once, not once per image size
            tile = min(tile or COMPILED_TILE_SIZE, COMPILED_TILE_SIZE)
    if not tile or tile >= max(height, width):
        return whole_pass(runtime, pixels).float()
    return tiled_pass(runtime, pixels, tile)


__all__ = ["COMPILED_TILE_SIZE", "PassRuntime", "exact_illumination", "global_pooled", "tiled_pass", "whole_pass"]
