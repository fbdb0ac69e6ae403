"""bench/winograd.py: its Winograd F(2,3) and F(4,3) convolutions equal the direct one, and it prints a row per method."""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO_ROOT

SPEC = importlib.util.spec_from_file_location("winograd_probe", REPO_ROOT / "bench" / "winograd.py")
winograd = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(winograd)

# Largest error relative to the largest output, against float64 (fp32 direct: ~1e-6; F(4,3) ~10x more).
RELATIVE_TOLERANCE = {2: 1e-5, 4: 1e-4}


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize(("height", "width"), [(1, 1), (5, 7), (13, 6), (33, 17)])  # odd sizes, partial tiles
def test_winograd_equals_the_direct_convolution(m, height, width):
    generator = torch.Generator().manual_seed(height * width + m)
    x = torch.rand(1, 6, height, width, generator=generator)
    weight = torch.randn(5, 6, 3, 3, generator=generator)
    expected = F.conv2d(x.double(), weight.double(), padding=1)[0].permute(1, 2, 0)
    result = winograd.TorchWinograd(m, weight)(x[0].permute(1, 2, 0).contiguous())
    assert result.shape == expected.shape
    assert (result - expected).abs().max().item() <= RELATIVE_TOLERANCE[m] * expected.abs().max().item()


def test_probe_prints_time_and_error_for_each_method(capsys):
    winograd.main(["--size", "40", "--channels", "8", "--repeat", "1"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("C=8")]
    names = [row.split()[1] for row in rows]
    assert names[:4] == ["direct", "direct", "F(2,3)", "F(4,3)"]  # fp32, bf16
    assert all("x direct" in row and "max error" in row for row in rows)
