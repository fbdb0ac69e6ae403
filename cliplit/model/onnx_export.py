"""Export of the network to ONNX, for deployment runtimes (ONNX Runtime, onnxruntime-web, mobile).

The exported graph takes `pixel_values` (1, 3, H, W) float32 in [0, 1], with H and W dynamic, and
returns `enhanced` (1, 3, H, W) = clamp(I / L**strength, 0, 1) at the model's default strength and
`illumination` (1, 1, H, W). It is the published network's arithmetic: only the pyramid's adaptive
average pooling is written differently, as a product with the 0/1 cell-membership matrices of
adaptive pooling (a cell of bin b over H rows covers [floor(iH/b), ceil((i+1)H/b))), divided by the
cell sizes, so that the pooling follows H and W at run time (PyTorch's exporter otherwise fixes the
pooling windows of the example input's size in the graph).
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CLIPLITError, display_name, first_line
from .network import apply_illumination, as_network, sanitize_pixels

OPSET = 18
EXAMPLE_SIZE = (1, 3, 96, 128)
MIN_SIDE, MAX_SIDE = 16, 32768
INPUT_NAME, OUTPUT_NAMES = "pixel_values", ("enhanced", "illumination")


def adaptive_pooling_matrix(size, bins: int, like: torch.Tensor) -> torch.Tensor:
    """(bins, size): row i averages the positions of adaptive-pooling cell i (works on symbolic sizes)."""
    positions = torch.arange(size, device=like.device)
    cells = torch.arange(bins, device=like.device)[:, None]
    lower = (cells * size) // bins
    upper = ((cells + 1) * size + bins - 1) // bins
    member = ((positions >= lower) & (positions < upper)).to(like.dtype)
    return member / member.sum(dim=1, keepdim=True)


class ExportableNetwork(nn.Module):
    """The network with its adaptive pooling as matrix products; `forward` -> (enhanced, illumination)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.network = as_network(model).float().eval()
        self.strength = float(self.network.config.default_strength)

    def forward(self, pixel_values: torch.Tensor):
        network = self.network
        pixels = sanitize_pixels(pixel_values)
        features = network.encode(pixels)
        height, width = features.shape[-2:]
        pooled = [
            torch.einsum("bh,nchw,dw->ncbd", adaptive_pooling_matrix(height, bins, features), features,
                         adaptive_pooling_matrix(width, bins, features))
            for bins in network.pyramid_pooling.bins
        ]
        context = [F.interpolate(grid, size=(height, width), mode="bilinear", align_corners=True)
                   for grid in network.pyramid_pooling.context_from_pooled(pooled)]
        illumination = network.decode(network.pyramid_pooling.fuse(features, context))
        return apply_illumination(pixels, illumination, self.strength), illumination


def export_onnx(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write `model` (a `CLIPLITModel` or `CLIPLITNetwork`) as an ONNX file with dynamic height and width."""
    path = Path(path)
    try:
        import onnx  # noqa: F401 - the exporter needs onnx and onnxscript
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise CLIPLITError(f"{display_name(path)}: exporting needs its extra: pip install -e \".[export]\" ({first_line(error)})") from None
    exportable = ExportableNetwork(model).eval()
    height = torch.export.Dim("height", min=MIN_SIDE, max=MAX_SIDE)
    width = torch.export.Dim("width", min=MIN_SIDE, max=MAX_SIDE)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):  # the exporter narrates its steps
            program = torch.onnx.export(exportable, (torch.rand(*EXAMPLE_SIZE),), dynamo=True, opset_version=OPSET,
                                        input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                                        dynamic_shapes={"pixel_values": {2: height, 3: width}}, verbose=False)
        program.save(str(partial))
        os.replace(partial, path)
    except OSError as error:
        raise CLIPLITError(f"{display_name(path)}: cannot write the ONNX file ({error.strerror or error})") from None
    finally:
        partial.unlink(missing_ok=True)
    return path


__all__ = ["ExportableNetwork", "INPUT_NAME", "OUTPUT_NAMES", "adaptive_pooling_matrix", "export_onnx"]
