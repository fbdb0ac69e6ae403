"""Memory budgets: how much working memory one evaluation of the network takes, how much is free, and
the tile size that fits (None: the whole image in one pass). Measured peaks: docs/engine.md."""

from __future__ import annotations

import torch

MIN_AUTO_TILE_SIZE = 64
TILE_ALIGNMENT = 32
# Peak bytes per pixel of one fp32 evaluation of the network, with margin: the fused CPU pass keeps
# 640 (three reused buffers, 160 floats), plus the input, the output and frame temporaries; the eager
# pass (CUDA) holds more activations at once. Scales with the dtype.
FP32_BYTES_PER_PIXEL = 1000
EAGER_FP32_BYTES_PER_PIXEL = 1500
# Fraction of the available memory an automatic choice may use, and the most a tile may use:
# larger tiles stop paying off (the halo is already small) and only raise the peak.
MEMORY_FRACTION = 0.5
MAX_TILE_WORKSPACE_BYTES = 1 << 30


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


__all__ = ["auto_tile_size", "available_memory", "bytes_per_pixel", "tile_size_for"]
