"""Exact tiled inference: bounded memory for any image size, same pixels as the whole-image pass.

Every layer of the network is a 3x3 convolution except the pyramid pooling, whose pooled grids see
the whole image. So the image is evaluated in two passes over overlapping tiles:

1. each tile (with the encoder's receptive radius of real neighbours, 5 pixels for the published
   network) is encoded and its features, cropped
   to the tile's core, are added into the adaptive-average-pool sums of every bin (a pooling cell of
   bin b over H rows covers rows [floor(i*H/b), ceil((i+1)*H/b))); dividing by the cell areas gives
   exactly the whole-image pooled grids, which the pyramid stages project once;
2. each tile (with a halo of encoder + decoder radius, 5 + 12 = 17 pixels, of real neighbours) is
   encoded again, fused with the global context
   upsampled (bilinear, align_corners=True) at the tile's global pixel coordinates, decoded, and its
   core is written into the output.

A tile's input box touches the image border exactly where its core does, so the network's reflection
(and the fuse convolution's zero) padding sees the same pixels as in the whole image; on inner sides
the padding only disturbs the halo pixels that are cropped away. Cores are balanced per axis
(`balanced_tile`), so that no nearly empty edge tile costs a whole tile's work. The radii are counted from the
network's convolutions (`CLIPLITNetworkMixin.encoder_radius` / `decoder_radius`), never written by hand. All tiles have the same input
size, so a compiled network is compiled once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MIN_AUTO_TILE_SIZE = 64
TILE_ALIGNMENT = 32
# Peak bytes per pixel of one fp32 evaluation of the network, with margin: the fused CPU pass keeps
# 640 (three reused buffers, 160 floats), plus the input, the output and frame temporaries; the eager
# pass (CUDA) holds more activations at once (measured peaks: docs/engine.md). Scales with the dtype.
FP32_BYTES_PER_PIXEL = 1000
EAGER_FP32_BYTES_PER_PIXEL = 1500
# Fraction of the available memory an automatic choice may use, and the most a tile may use:
# larger tiles stop paying off (the halo is already small) and only raise the peak.
MEMORY_FRACTION = 0.5
MAX_TILE_WORKSPACE_BYTES = 1 << 30
# Rows summed in float32 per matrix product of the pyramid pooling before the float64 accumulation:
# float32 sums over whole columns of a large map drift (docs/engine.md, "Pooling accuracy").
POOLING_ROW_CHUNK = 256


@dataclass(frozen=True)
class Box:
    """Image pixels rows [top, bottom) x columns [left, right), in global coordinates."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left

    def within(self, outer: "Box") -> tuple[slice, slice]:
        """(row slice, column slice) of this box inside the tensor that covers `outer`."""
        return (
            slice(self.top - outer.top, self.bottom - outer.top),
            slice(self.left - outer.left, self.right - outer.left),
        )


@dataclass(frozen=True)
class Tile:
    """The core box a tile produces, and the larger input box it reads (core + real neighbours)."""

    core: Box
    input: Box


def axis_spans(size: int, tile: int, margin: int) -> list[tuple[int, int, int, int]]:
    """
    Split [0, size) into cores of at most `tile` pixels. Returns (core_start, core_stop, input_start,
    input_stop) for each: the input span has `margin` real neighbours on each inner side and the same
    length min(tile + 2 * margin, size) for every core, so all tiles have one shape.
    """
    if tile < 1:
        raise ValueError(f"tile size must be positive, got {tile}")
    length = min(tile + 2 * margin, size)
    spans = []
    for start in range(0, size, tile):
        stop = min(start + tile, size)
        input_start = min(max(start - margin, 0), size - length)
        spans.append((start, stop, input_start, input_start + length))
    return spans


def balanced_tile(size: int, tile: int) -> int:
    """
    The core size that splits `size` into as few cores of at most `tile` as `tile` does, all of nearly
    equal size: 4000 px in tiles of 992 gives 5 cores of 800, not 4 of 992 and a fifth of 32 px, which
    would cost a whole tile (every tile of an axis has one input length) for 32 rows.
    """
    return -(-size // -(-size // tile))


def plan_tiles(height: int, width: int, tile: int, margin: int, balanced: bool = True) -> list[Tile]:
    """
    Tiles (row-major) covering a height x width image with cores of at most tile x tile pixels, of
    nearly equal size per axis when `balanced` (else `tile` exactly, and one tile shape for every image:
    what a compiled runtime wants).
    """
    tile_h, tile_w = (balanced_tile(height, tile), balanced_tile(width, tile)) if balanced else (tile, tile)
    return [
        Tile(Box(r0, c0, r1, c1), Box(ir0, ic0, ir1, ic1))
        for r0, r1, ir0, ir1 in axis_spans(height, tile_h, margin)
        for c0, c1, ic0, ic1 in axis_spans(width, tile_w, margin)
    ]


def pooling_matrix(size: int, bins: int, start: int, stop: int) -> torch.Tensor:
    """
    Membership (0/1) of positions [start, stop) in the `bins` cells of adaptive average pooling over
    `size` positions: shape (bins, stop - start).
    """
    index = torch.arange(start, stop)
    cell = torch.arange(bins)[:, None]
    lower = (cell * size) // bins
    upper = -((-(cell + 1) * size) // bins)
    return ((index >= lower) & (index < upper)).to(torch.float32)


def interpolation_matrix(size: int, bins: int, start: int, stop: int) -> torch.Tensor:
    """
    Rows [start, stop) of the (size, bins) matrix that upsamples `bins` values to `size` values
    bilinearly with align_corners=True, as `F.interpolate` does: shape (stop - start, bins), float32.
    """
    scale = (bins - 1) / (size - 1) if size > 1 else 0.0
    position = torch.arange(start, stop, dtype=torch.float64) * scale
    lower = position.floor().long().clamp(max=bins - 1)
    upper = (lower + 1).clamp(max=bins - 1)
    weight = position - lower.to(torch.float64)
    matrix = torch.zeros(stop - start, bins, dtype=torch.float64)
    rows = torch.arange(stop - start)
    matrix.index_put_((rows, lower), 1 - weight, accumulate=True)
    matrix.index_put_((rows, upper), weight, accumulate=True)
    return matrix.to(torch.float32)


def upsample_context(grids: list[torch.Tensor], box: Box, height: int, width: int) -> list[torch.Tensor]:
    """
    Each projected grid (1, reduction, bin, bin) upsampled to the height x width image (bilinear,
    align_corners=True) and evaluated on `box` only: one (1, reduction, box.height, box.width) map each.
    """
    maps = []
    for grid in grids:
        rows = interpolation_matrix(height, grid.shape[-2], box.top, box.bottom).to(grid.device, grid.dtype)
        cols = interpolation_matrix(width, grid.shape[-1], box.left, box.right).to(grid.device, grid.dtype)
        maps.append(torch.einsum("yi,ncij,xj->ncyx", rows, grid, cols))
    return maps


def _crop(pixels: torch.Tensor, box: Box) -> torch.Tensor:
    return pixels[:, :, box.top : box.bottom, box.left : box.right]


def pooled_sums(core: torch.Tensor, box: Box, height: int, width: int, bins) -> list[torch.Tensor]:
    """
    Sums of `core` (1, C, h, w), the features of the pixels in `box` of a height x width map, over the
    cells of adaptive average pooling of that map: one (1, C, b, b) float64 tensor per bin count b.

    One pass over the features: the rows of every bin's cells at once (a stacked membership matrix),
    as float32 matrix products over `POOLING_ROW_CHUNK` rows accumulated in float64, then the columns.
    """
    pixels = core[0].permute(1, 2, 0)  # (h, w, C): a view of channels-last memory
    rows, cols, channels = pixels.shape
    pixels = pixels.reshape(rows, cols * channels)
    row_cells = torch.cat([pooling_matrix(height, b, box.top, box.bottom) for b in bins]).to(core.device)
    col_cells = torch.cat([pooling_matrix(width, b, box.left, box.right) for b in bins]).to(core.device, torch.float64)
    row_sums = torch.zeros((len(row_cells), cols * channels), dtype=torch.float64, device=core.device)
    for first in range(0, rows, POOLING_ROW_CHUNK):
        chunk = slice(first, first + POOLING_ROW_CHUNK)
        row_sums += (row_cells[:, chunk] @ pixels[chunk].float()).double()
    cells = torch.einsum("rxc,kx->crk", row_sums.view(-1, cols, channels), col_cells)  # (C, cell rows, cell cols)
    sums, offset = [], 0
    for b in bins:
        sums.append(cells[None, :, offset : offset + b, offset : offset + b])
        offset += b
    return sums


def pooled_averages(sums: list[torch.Tensor], height: int, width: int, bins) -> list[torch.Tensor]:
    """`pooled_sums` of the whole height x width map -> the adaptive average pools, float32."""
    grids = []
    for b, total in zip(bins, sums):
        area = pooling_matrix(height, b, 0, height).sum(1)[:, None] * pooling_matrix(width, b, 0, width).sum(1)[None, :]
        grids.append((total / area.to(total.device, torch.float64)).float())
    return grids


def average_pooled(features: torch.Tensor, bins) -> list[torch.Tensor]:
    """
    `F.adaptive_avg_pool2d(features, b)` for each b in `bins`, with each cell's sum accumulated by blocked
    matrix products and in float64 across rows of cells: PyTorch's float32 adaptive pooling of a large map
    drifts (measured: 5.6e-4 on a 3 MP photo's features, 7.8e-3 on 24 MP, for values up to 0.35), which
    would make a whole-image pass differ from the tiled one. `features`: (N, C, H, W), each image pooled
    on its own -> one (N, C, b, b) grid per bin.
    """
    height, width = features.shape[-2:]
    whole = Box(0, 0, height, width)
    per_image = [pooled_averages(pooled_sums(features[i : i + 1], whole, height, width, bins), height, width, bins)
                 for i in range(features.shape[0])]
    return [torch.cat(grids) for grids in zip(*per_image)]


def global_pooled(runtime, pixels: torch.Tensor, tile: int, workspace=None) -> list[torch.Tensor]:
    """
    Pass 1: the adaptive-average-pooled encoder features of the whole image, computed tile by tile.
    `pixels`: (1, 3, H, W) -> one (1, hidden, bin, bin) float32 grid per bin (on the runtime's device).
    `workspace`: the runtime's buffers for this image (`Runtime.workspace`).
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


def estimate_tiled(runtime, pixels: torch.Tensor, tile: int) -> torch.Tensor:
    """
    The illumination map of `pixels` (1, 3, H, W) in [0, 1], computed in tiles of at most tile x tile
    output pixels (plus a halo on inner sides): (1, 1, H, W) float32 on the device of `pixels`, equal
    to the whole-image pass up to float rounding. Peak memory follows `tile`, not H x W.
    """
    if pixels.ndim != 4 or pixels.shape[0] != 1:
        raise ValueError(f"expected pixel_values of shape (1, 3, H, W), got {tuple(pixels.shape)}")
    tile = max(int(tile), 1)
    height, width = pixels.shape[-2:]
    output = torch.empty((1, runtime.config.illumination_channels, height, width), dtype=torch.float32, device=pixels.device)
    with runtime.workspace() as workspace:
        grids = runtime.project_context(global_pooled(runtime, pixels, tile, workspace))
        for item in plan_tiles(height, width, tile, runtime.encoder_radius + runtime.decoder_radius,
                               balanced=not runtime.compiled):
            features = runtime.encode(_crop(pixels, item.input), workspace)
            illumination = runtime.fuse_decode(features, grids, item.input, height, width, workspace)
            del features
            rows, cols = item.core.within(item.input)
            output[:, :, item.core.top : item.core.bottom, item.core.left : item.core.right] = illumination[:, :, rows, cols].float()
    return output


def bytes_per_pixel(dtype: torch.dtype, device="cpu") -> int:
    """Peak working memory of the network per evaluated pixel, for `dtype` on `device`."""
    fused_cpu = torch.device(device).type == "cpu" and dtype == torch.float32
    per_fp32_pixel = FP32_BYTES_PER_PIXEL if fused_cpu else EAGER_FP32_BYTES_PER_PIXEL
    return per_fp32_pixel * torch.tensor([], dtype=dtype).element_size() // 4


def available_memory(device: torch.device) -> int:
    """Bytes this process can still allocate on `device` (CUDA: free device memory; CPU: available RAM)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        with open("/proc/meminfo") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo)
        return int(fields["MemAvailable"].split()[0]) * 1024


def tile_size_for(workspace_bytes: int, dtype: torch.dtype, device="cpu", halo: int = 0) -> int:
    """The largest tile (aligned, >= MIN_AUTO_TILE_SIZE) whose input (tile + 2 * halo)^2 fits `workspace_bytes`."""
    side = int((workspace_bytes / bytes_per_pixel(dtype, device)) ** 0.5) - 2 * halo
    return max(MIN_AUTO_TILE_SIZE, side // TILE_ALIGNMENT * TILE_ALIGNMENT)


def auto_tile_size(height: int, width: int, device, dtype: torch.dtype, memory_bytes: int | None = None,
                   halo: int = 0) -> int | None:
    """
    The tile size for a height x width image: None (whole image in one pass) when the whole pass fits
    in `MEMORY_FRACTION` of the memory available (`memory_bytes`, default: measured now), else the
    largest tile whose working memory fits that budget and `MAX_TILE_WORKSPACE_BYTES`.
    """
    budget = int(MEMORY_FRACTION * (available_memory(device) if memory_bytes is None else memory_bytes))
    if height * width * bytes_per_pixel(dtype, device) <= budget:
        return None
    return tile_size_for(min(budget, MAX_TILE_WORKSPACE_BYTES), dtype, device, halo)


__all__ = [
    "Box",
    "Tile",
    "axis_spans",
    "balanced_tile",
    "plan_tiles",
    "pooling_matrix",
    "interpolation_matrix",
    "upsample_context",
    "global_pooled",
    "estimate_tiled",
    "auto_tile_size",
    "tile_size_for",
    "available_memory",
    "bytes_per_pixel",
]
