"""Export of the network to ONNX, for deployment runtimes (ONNX Runtime, onnxruntime-web, mobile).

The exported graph takes `pixel_values` (1, 3, H, W) float32 in [0, 1], with H and W dynamic, and
returns `enhanced` (1, 3, H, W) = clamp(I / L**strength, 0, 1) at the model's default strength and
`illumination` (1, 1, H, W). It is the published network's arithmetic: only the pyramid's adaptive
average pooling is written differently, as products with the averaging matrices of adaptive pooling
(`cliplit.engine.pyramid.averaging_matrix`, the engine's own), so that the pooling follows H and W at run
time (PyTorch's exporter otherwise fixes the pooling windows of the example input's size in the graph).
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
from ..model.network import apply_illumination, as_network, sanitize_pixels
from ..safety.outputs import atomic_write
from .pyramid import averaging_matrix, project

OPSET = 18
EXAMPLE_SIZE = (1, 3, 96, 128)
MIN_SIDE, MAX_SIDE = 16, 32768
INPUT_NAME, OUTPUT_NAMES = "pixel_values", ("enhanced", "illumination")


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
            torch.einsum("bh,nchw,dw->ncbd", averaging_matrix(height, bins, features.dtype, features.device), features,
                         averaging_matrix(width, bins, features.dtype, features.device))
            for bins in network.pyramid_pooling.bins
        ]
        context = [F.interpolate(grid, size=(height, width), mode="bilinear", align_corners=True)
                   for grid in project(network.pyramid_pooling, pooled)]
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
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):  # the exporter narrates its steps
        program = torch.onnx.export(exportable, (torch.rand(*EXAMPLE_SIZE),), dynamo=True, opset_version=OPSET,
                                    input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                                    dynamic_shapes={"pixel_values": {2: height, 3: width}}, verbose=False)
    try:
        with atomic_write(path) as partial:
            program.save(str(partial))
    except OSError as error:
        raise CLIPLITError(f"{display_name(path)}: cannot write the ONNX file ({error.strerror or error})") from None
    return path


__all__ = ["ExportableNetwork", "INPUT_NAME", "OUTPUT_NAMES", "export_onnx"]
