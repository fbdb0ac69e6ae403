"""`cliplit export`: an ONNX file with dynamic height and width that ONNX Runtime runs to the published pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import ENHANCEMENT_CHECKPOINT, golden_for, smallest_reference_image
from helpers import run_cli
from PIL import Image

from cliplit.engine.onnx_export import ExportableNetwork
from cliplit.engine.pyramid import averaging_matrix
from cliplit.model.network import CLIPLITNetwork

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is in the export extra")


@pytest.mark.parametrize("size", [1, 5, 7, 13, 100])
@pytest.mark.parametrize("bins", [1, 2, 3, 6])
def test_the_pooling_matrices_are_adaptive_average_pooling(size, bins):
    values = torch.rand(1, 1, size, 1, dtype=torch.float64)
    pooled = averaging_matrix(size, bins, torch.float64) @ values[0, 0, :, 0]
    expected = torch.nn.functional.adaptive_avg_pool2d(values, (bins, 1))[0, 0, :, 0]
    torch.testing.assert_close(pooled, expected)


def test_the_exportable_network_computes_the_network():
    torch.manual_seed(0)
    network = CLIPLITNetwork().eval()
    network.start_from_identity()
    pixels = torch.rand(1, 3, 45, 67)
    with torch.no_grad():
        enhanced, illumination = ExportableNetwork(network)(pixels)
        torch.testing.assert_close(illumination, network(pixels), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(enhanced, (pixels / illumination).clamp(0, 1))


@pytest.mark.reference
def test_exported_file_gives_the_published_pixels_through_onnxruntime_at_any_size(tmp_path):
    output = tmp_path / "clip-lit.onnx"
    result = run_cli("export", ENHANCEMENT_CHECKPOINT, output)
    assert result.returncode == 0, result.stderr
    session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    path = smallest_reference_image()
    with Image.open(path) as photo, Image.open(golden_for(path)) as golden:
        pixels = np.asarray(photo.convert("RGB"), dtype=np.float32)[None].transpose(0, 3, 1, 2) / 255
        expected = np.asarray(golden.convert("RGB")).astype(int)
    enhanced, illumination = session.run(None, {"pixel_values": pixels})
    produced = np.floor(enhanced[0].transpose(1, 2, 0) * 255 + 0.5).astype(int)
    assert produced.shape == expected.shape
    assert np.abs(produced - expected).max() <= 1  # within one 8-bit level of the authors' outputs, every pixel
    small = np.ascontiguousarray(pixels[:, :, :37, :53])  # another size, same file
    assert session.run(None, {"pixel_values": small})[1].shape == (1, 1, 37, 53)
    again = run_cli("export", ENHANCEMENT_CHECKPOINT, output)
    assert again.returncode == 1 and "exists (pass --overwrite" in again.stderr and "Traceback" not in again.stderr
