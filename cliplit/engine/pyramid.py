"""The pyramid context: the one home of the math that makes CLIP-LIT's only non-local layer exact on any
part of an image.

The network's pyramid pooling averages the encoder's features (1, hidden, H, W) over the cells of a
b x b grid for each bin count b (1, 2, 3, 6), projects each grid (a 1x1 convolution and a PReLU:
`CLIPLITPyramidPooling.context_from_pooled`) and upsamples it bilinearly (align_corners=True) back to
H x W before fusing it with the features. Written as matrices:

- adaptive average pooling over `size` positions into `bins` cells is a product with the 0/1 membership
  matrix `pooling_matrix(size, bins)` (a cell i covers [floor(i * size / bins), ceil((i + 1) * size / bins)))
  divided by the cell sizes: the features of any `Box` of the image add into the whole image's cell sums
  (`pooled_sums`), which is how exact tiles pool the whole image one tile at a time;
- bilinear upsampling of `bins` values to `size` positions is a product with `interpolation_matrix(size,
  bins)`, whose rows can be evaluated for the pixels of one box only (`upsample_context`).

Every path uses these: the whole-image and tiled passes (`cliplit.engine.passes`), the fused CPU pass
(`cliplit.engine.fused_cpu`, which folds the upsampling into the fuse convolution) and the ONNX export
(`cliplit.engine.onnx_export`, whose graph pools with `averaging_matrix` at run-time sizes).

Sums are accumulated in float64 across blocks of `POOLING_ROW_CHUNK` rows: PyTorch's float32 adaptive
pooling of a large map drifts (measured: 5.6e-4 on a 3 MP photo's features, 7.8e-3 on 24 MP, for values
up to 0.35), which would make a whole-image pass differ from the tiled one (docs/engine.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Rows summed in float32 per matrix product before the float64 accumulation (float32 sums over whole
# columns of a large map drift).
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


def pooling_matrix(size, bins: int, start=0, stop=None, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """
    Membership (0/1) of positions [start, stop) (default: all `size`) in the `bins` cells of adaptive average
    pooling over `size` positions: shape (bins, stop - start). `size` may be a symbolic size (the ONNX export).
    """
    index = torch.arange(start, size if stop is None else stop, device=device)
    cell = torch.arange(bins, device=device)[:, None]
    lower = (cell * size) // bins
    upper = ((cell + 1) * size + bins - 1) // bins
    return ((index >= lower) & (index < upper)).to(dtype)


def averaging_matrix(size, bins: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """(bins, size): row i averages the positions of adaptive-pooling cell i (`pooling_matrix` / cell sizes)."""
    member = pooling_matrix(size, bins, dtype=dtype, device=device)
    return member / member.sum(dim=1, keepdim=True)


def interpolation_matrix(size: int, bins: int, start: int, stop: int) -> torch.Tensor:
    """
    Rows [start, stop) of the (size, bins) matrix that upsamples `bins` values to `size` values
    bilinearly with align_corners=True, as `F.interpolate` does: shape (stop - start, bins), float32
    (computed in float64). Rows outside [0, size) extrapolate linearly (the fused pass zeroes them).
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
        area = pooling_matrix(height, b).sum(1)[:, None] * pooling_matrix(width, b).sum(1)[None, :]
        grids.append((total / area.to(total.device, torch.float64)).float())
    return grids


def average_pooled(features: torch.Tensor, bins) -> list[torch.Tensor]:
    """
    `F.adaptive_avg_pool2d(features, b)` for each b in `bins`, accumulated as `pooled_sums` does.
    `features`: (N, C, H, W), each image pooled on its own -> one (N, C, b, b) float32 grid per bin.
    """
    height, width = features.shape[-2:]
    whole = Box(0, 0, height, width)
    per_image = [pooled_averages(pooled_sums(features[i : i + 1], whole, height, width, bins), height, width, bins)
                 for i in range(features.shape[0])]
    return [torch.cat(grids) for grids in zip(*per_image)]


def project(pyramid_pooling, pooled: list[torch.Tensor]) -> list[torch.Tensor]:
    """
    The pyramid's stages applied to average-pooled grids (one (N, hidden, b, b) tensor per bin), in the
    stages' own device and dtype: one projected (N, reduction, b, b) float32 grid per bin.
    `pyramid_pooling`: the network's `CLIPLITPyramidPooling`.
    """
    weight = next(pyramid_pooling.parameters())
    stages = pyramid_pooling.context_from_pooled([grid.to(weight.device, weight.dtype) for grid in pooled])
    return [grid.float() for grid in stages]


def upsample_context(grids: list[torch.Tensor], box: Box, height: int, width: int) -> list[torch.Tensor]:
    """
    Each projected grid (N, reduction, bin, bin) upsampled to the height x width image (bilinear,
    align_corners=True) and evaluated on `box` only: one (N, reduction, box.height, box.width) map each.
    """
    maps = []
    for grid in grids:
        rows = interpolation_matrix(height, grid.shape[-2], box.top, box.bottom).to(grid.device, grid.dtype)
        cols = interpolation_matrix(width, grid.shape[-1], box.left, box.right).to(grid.device, grid.dtype)
        maps.append(torch.einsum("yi,ncij,xj->ncyx", rows, grid, cols))
    return maps


__all__ = ["Box", "POOLING_ROW_CHUNK", "average_pooled", "averaging_matrix", "interpolation_matrix", "pooled_averages",
           "pooled_sums", "pooling_matrix", "project", "upsample_context"]
