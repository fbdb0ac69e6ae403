"""The network's forward pass with oneDNN's fused convolutions and reused buffers (CPU, channels-last fp32).

Same arithmetic as `CLIPLITModel`, fewer passes over memory and no fresh memory per layer:

- **buffers**: every activation is written into a `Workspace` buffer that lives for one image (all of
  its tiles included): fresh memory costs a page fault and the kernel zeroing every page on first
  touch. Convolutions write in place: oneDNN's in-place form adds conv(x) into a tensor, so a
  residual block's second convolution accumulates into its skip connection, and every other
  convolution into a zeroed buffer (cheaper than a fresh allocation; figures: docs/engine.md);
- **padding**: each 3x3 convolution pads with zeros inside oneDNN (free) and then recomputes its
  one-pixel frame, the only outputs that reflection padding changes, with one small matrix product
  over the frame's 3x3 patches (O(perimeter) work);
- **activations**: the leaky ReLU runs in place on the buffer;
- **pyramid fusion**: the fuse convolution over [features, 4 upsampled context maps] is split by
  linearity into a convolution over the features and the context's contribution, which is computed
  directly from the small projected grids with one matrix product (bilinear upsampling and the 3x3
  convolution are both linear and separable by rows and columns), so the 64-channel concatenation and
  the upsampled maps are never built.

The outputs equal the eager pass up to float rounding (`tests/engine/test_fused_cpu.py`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..model.network import KERNEL_SIZE
from .pyramid import Box, interpolation_matrix

KERNEL_PADDING = [1, 1]
UNIT = [1, 1]
SINGLE_GROUP = 1
MAIN, INNER, FUSED = "main", "inner", "fused"  # the workspace's storages (see `Workspace`)


def fused_cpu_supported(model, device: torch.device, dtype: torch.dtype, channels_last: bool) -> bool:
    """Whether this pass applies: CPU, oneDNN present, channels-last fp32, reflect or zero padding."""
    return (
        device.type == "cpu"
        and channels_last
        and dtype == torch.float32
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_convolution_pointwise_")
        and all(conv.padding_mode in ("reflect", "zeros") for conv in model.modules() if isinstance(conv, nn.Conv2d))
        and model.pyramid_pooling.fuse_activation.weight.numel() == 1
    )


class Workspace:
    """
    Activation buffers for one image, reused by every layer and every tile. `buffer(name, c, h, w)`
    returns a (1, c, h, w) channels-last view of the named storage, grown when too small; its previous
    contents are overwritten. Not shared between threads: one per image at a time.

    The pass uses three storages (160 floats per pixel in all), each holding one live activation at a
    time: "main" (the encoder's features, then the 64-channel middle activations), "inner" (the first
    convolution of each residual block) and "fused" (the pyramid fusion, then the decoder).
    """

    def __init__(self):
        self._storage: dict[str, torch.Tensor] = {}

    def buffer(self, role: str, channels: int, height: int, width: int) -> torch.Tensor:
        size = channels * height * width
        storage = self._storage.get(role)
        if storage is None or storage.numel() < size:
            storage = self._storage[role] = torch.empty(size, dtype=torch.float32)
        return storage[:size].view(1, height, width, channels).permute(0, 3, 1, 2)


def _add_convolution(out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    """out += conv3x3(x, weight) + bias, zero padding, in place (oneDNN; channels-last fp32 tensors)."""
    torch.ops.mkldnn._convolution_pointwise_.binary(
        out, x, weight, bias, KERNEL_PADDING, UNIT, UNIT, SINGLE_GROUP, "add", None, None, [], None
    )


def _frame_patches(x: torch.Tensor) -> torch.Tensor:
    """
    The reflection-padded 3x3 patches of the one-pixel frame of `x` (1, C, H, W): (C * 9, 2W + 2H),
    columns ordered top row, bottom row, left column, right column (as `_frame_values`).
    """
    height, width = x.shape[-2:]
    strips = (
        F.pad(x[:, :, :2, :], (1, 1, 1, 0), mode="reflect"),
        F.pad(x[:, :, height - 2 :, :], (1, 1, 0, 1), mode="reflect"),
        F.pad(x[:, :, :, :2], (1, 0, 1, 1), mode="reflect"),
        F.pad(x[:, :, :, width - 2 :], (0, 1, 1, 1), mode="reflect"),
    )
    return torch.cat([F.unfold(strip, KERNEL_SIZE) for strip in strips], dim=2)[0]


def _frame_values(t: torch.Tensor) -> torch.Tensor:
    """The frame of `t` (1, C, H, W) as (C, 2W + 2H): top row, bottom row, left column, right column."""
    return torch.cat([t[0, :, 0, :], t[0, :, -1, :], t[0, :, :, 0], t[0, :, :, -1]], dim=1)


def _write_frame(out: torch.Tensor, values: torch.Tensor) -> None:
    """Inverse of `_frame_values`: write (C, 2W + 2H) into the frame of `out` (1, C, H, W)."""
    height, width = out.shape[-2:]
    out[0, :, 0, :] = values[:, :width]
    out[0, :, -1, :] = values[:, width : 2 * width]
    out[0, :, :, 0] = values[:, 2 * width : 2 * width + height]
    out[0, :, :, -1] = values[:, 2 * width + height :]


class CLIPLITFusedCPU:
    """
    The forward pass of a `CLIPLITModel` (channels-last fp32 on the CPU) with fused, in-place
    convolutions. Methods take a `Workspace`; the features `encode` returns live in it until the
    workspace's next `encode` or `fuse_decode`.
    """

    def __init__(self, model):
        self.model = model
        config = model.config
        self.slope = config.negative_slope
        self.floor = config.illumination_floor
        pyramid = model.pyramid_pooling
        hidden = config.hidden_size
        fuse_weight = pyramid.fuse_conv.weight
        # fuse conv = conv over the features (first `hidden` input channels) + conv over the context maps
        self.fuse_features_weight = fuse_weight[:, :hidden].contiguous(memory_format=torch.channels_last)
        self.fuse_context_weights = [
            fuse_weight[:, hidden + k * config.pyramid_reduction_size : hidden + (k + 1) * config.pyramid_reduction_size]
            .double()
            .contiguous()
            for k in range(len(pyramid.bins))
        ]
        self.fuse_slope = float(pyramid.fuse_activation.weight.reshape(()))
        self.frame_weights = {
            conv: conv.weight.reshape(conv.out_channels, -1).contiguous()
            for conv in model.modules()
            if isinstance(conv, nn.Conv2d) and conv.kernel_size == (KERNEL_SIZE, KERNEL_SIZE)
        }

    # -- one convolution -------------------------------------------------------------------------
    def conv3x3(self, x: torch.Tensor, conv: nn.Conv2d, out: torch.Tensor, slope: float | None = None,
                accumulate: bool = False) -> torch.Tensor:
        """
        out <- leaky_relu(conv(x) [+ out], slope) in place (no activation when `slope` is None;
        `accumulate=True` adds the convolution to `out`'s contents, else `out` is overwritten), with
        the model's padding. `x`: (1, C_in, H, W), `out`: (1, C_out, H, W), both channels-last.
        """
        reflect = conv.padding_mode == "reflect"
        frame_residual = _frame_values(out) if (accumulate and reflect) else None
        if not accumulate:
            out.zero_()
        _add_convolution(out, x, conv.weight, conv.bias)
        if reflect:  # recompute the frame with reflection padding, before the activation
            frame = self.frame_weights[conv] @ _frame_patches(x)
            if conv.bias is not None:
                frame += conv.bias[:, None]
            if frame_residual is not None:
                frame += frame_residual
            _write_frame(out, frame)
        if slope is not None:
            F.leaky_relu_(out, slope)
        return out

    def _residual_blocks(self, hidden: torch.Tensor, blocks, inner: torch.Tensor) -> torch.Tensor:
        for block in blocks:
            self.conv3x3(hidden, block.conv1, inner, self.slope)
            self.conv3x3(inner, block.conv2, hidden, self.slope, accumulate=True)
        return hidden

    # -- the three parts of the pass ----------------------------------------------------------------
    def encode(self, pixels: torch.Tensor, workspace: Workspace) -> torch.Tensor:
        """As `CLIPLITModel.encode`: (1, 3, H, W) -> features (1, hidden, H, W), held in `workspace`."""
        height, width = pixels.shape[-2:]
        channels = self.model.config.hidden_size
        hidden = self.conv3x3(pixels, self.model.stem, workspace.buffer(MAIN, channels, height, width), self.slope)
        inner = workspace.buffer(INNER, channels, height, width)
        return self._residual_blocks(hidden, self.model.encoder_blocks, inner)

    def _context_term(self, grids: list[torch.Tensor], box: Box, height: int, width: int, out: torch.Tensor) -> None:
        """
        out (1, hidden, h, w) <- the fuse convolution (zero padding outside `box`) applied to the
        projected context `grids` (one (1, reduction, bin, bin) tensor per bin) upsampled bilinearly
        (align_corners=True) to the height x width image, on the pixels of `box` (h x w).

        With R (rows x bin) and C (cols x bin) the interpolation matrices and W_k the context weights,
        out[y, x] = sum_{k, dy, i} R_k[y + dy - 1, i] * T_k[dy, i, x], where
        T_k[dy, i, x] = sum_{dx, j} C_k[x + dx - 1, j] * (W_k[:, :, dy, dx] @ grid_k[:, i, j]):
        one (h, K) x (K, w * hidden) matrix product, K = 3 * sum(bins).
        """
        rows_factors, column_terms = [], []
        for grid, weight in zip(grids, self.fuse_context_weights):
            bins = grid.shape[-1]
            grid = grid[0].double()  # (reduction, bin, bin)
            # interpolation rows for positions box.top - 1 .. box.bottom, zero outside the box
            rows = interpolation_matrix(height, bins, box.top - 1, box.bottom + 1).double()
            cols = interpolation_matrix(width, bins, box.left - 1, box.right + 1).double()
            rows[0], rows[-1], cols[0], cols[-1] = 0, 0, 0, 0
            projected = torch.einsum("ocab,cij->abijo", weight, grid)  # (dy, dx, i, j, out)
            # T[dy, i, x, o] = sum_dx sum_j cols[x + dx, j] * projected[dy, dx, i, j, o]
            terms = sum(
                torch.einsum("xj,aijo->aixo", cols[dx : dx + box.width], projected[:, dx]) for dx in range(KERNEL_SIZE)
            )
            for dy in range(KERNEL_SIZE):
                rows_factors.append(rows[dy : dy + box.height])  # (h, bin)
                column_terms.append(terms[dy].reshape(bins, -1))  # (bin, w * out)
        lhs = torch.cat(rows_factors, dim=1).float()
        rhs = torch.cat(column_terms, dim=0).float()
        torch.matmul(lhs, rhs, out=out.permute(0, 2, 3, 1).reshape(box.height, -1))

    def fuse_decode(self, features: torch.Tensor, grids: list[torch.Tensor], box: Box, height: int, width: int,
                    workspace: Workspace) -> torch.Tensor:
        """
        Pyramid fusion and decoder: `features` (1, hidden, h, w) of the pixels in `box` of a
        height x width image, projected context `grids` -> floored illumination (1, 1, h, w), a new tensor.
        """
        model, config = self.model, self.model.config
        h, w = features.shape[-2:]
        fused = workspace.buffer(FUSED, config.hidden_size, h, w)
        self._context_term(grids, box, height, width, fused)
        _add_convolution(fused, features, self.fuse_features_weight, None)  # zero padding: no frame fix
        F.leaky_relu_(fused, self.fuse_slope)  # PReLU with one parameter
        # the features (in MAIN) are consumed: MAIN takes the 64-channel activations
        wide = self.conv3x3(fused, model.expand, workspace.buffer(MAIN, config.expanded_hidden_size, h, w))
        wide = self._residual_blocks(wide, model.middle_blocks, workspace.buffer(INNER, config.expanded_hidden_size, h, w))
        hidden = self.conv3x3(wide, model.reduce, workspace.buffer(FUSED, config.hidden_size, h, w))
        hidden = self._residual_blocks(hidden, model.decoder_blocks, workspace.buffer(INNER, config.hidden_size, h, w))
        head = model.illumination_head
        illumination = torch.empty((1, head.out_channels, h, w), memory_format=torch.channels_last)
        return self.conv3x3(hidden, head, illumination).clamp_min_(self.floor)
