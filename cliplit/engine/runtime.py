"""The network prepared for fast inference on one device and precision.

`Runtime` holds a private copy of the network (a plain `CLIPLITNetwork`, whatever model it was given)
moved to the device and dtype, with its weights
and inputs in channels-last layout (on the CPU this selects oneDNN's fastest convolutions; on CUDA
it lets cuDNN use tensor cores in half precision). Optionally the three parts of the forward pass are
compiled with `torch.compile` (inductor, with weight freezing: oneDNN convolutions with the
activations fused). Nothing global is changed here: process-wide settings are made only by the
command line and the benchmark (`configure_cpu`).
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

import torch

from ..errors import SettingsError
from ..model.network import as_network, sanitize_pixels
from .fused_cpu import CLIPLITFusedCPU, Workspace, fused_cpu_supported
from .pyramid import Box, upsample_context
from .settings import AUTO_DEVICE, PRECISION_NAMES, check_device, check_precision

PRECISIONS = dict(zip(PRECISION_NAMES, (torch.float32, torch.float16, torch.bfloat16)))
THP_ENV_VAR = "THP_MEM_ALLOC_ENABLE"  # read by PyTorch's CPU allocator at its first allocation >= 2 MB
COMPILE_OPTIONS = {"freezing": True}  # inductor: fold weights as constants, prepack oneDNN weights


def resolve_dtype(dtype) -> torch.dtype:
    """None, a torch dtype, or "fp32" / "fp16" / "bf16" -> a torch floating dtype (None is fp32)."""
    return PRECISIONS[check_precision(dtype)]


def resolve_device(device=None) -> torch.device:
    """None or 'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:N' or a torch device."""
    device = check_device(device)
    if device is None or device == AUTO_DEVICE:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise SettingsError(f"device {device}: CUDA is not available on this machine (use cpu or auto)")
    return resolved


def physical_cores() -> int:
    """Physical CPU cores available to this process (hyper-threads do not help convolutions)."""
    try:
        import psutil

        cores = psutil.cpu_count(logical=False)
    except ImportError:
        cores = None
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores or available, available))


def configure_cpu(num_threads: int | None = None) -> int:
    """
    Process-wide CPU settings for inference; call from entry points (CLI, benchmark) only, before
    the first large tensor is allocated. Returns the thread count.

    - PyTorch's intra-op threads = `num_threads` (default: the physical cores);
    - `THP_MEM_ALLOC_ENABLE=1` (unless already set): PyTorch backs allocations of 2 MB and more with
      transparent huge pages, so memory touched for the first time (the workspace of the first image,
      every activation of the eager pass) page-faults once per 2 MB instead of once per 4 kB
      (figures: docs/engine.md).
    """
    os.environ.setdefault(THP_ENV_VAR, "1")
    num_threads = num_threads or physical_cores()
    torch.set_num_threads(num_threads)
    return num_threads


class WorkspacePool:
    """
    The fused CPU pass's activation buffers kept from one image to the next (one set at most, when
    `keep`), shared by a runtime and its scale-matched copies. Thread-safe: a second image borrowing
    while the kept set is in use gets new buffers.
    """

    def __init__(self, keep: bool = True):
        self.keep = keep
        self._kept: Workspace | None = None
        self._lock = threading.Lock()

    @contextmanager
    def borrow(self):
        with self._lock:
            workspace, self._kept = self._kept, None
        workspace = workspace or Workspace()
        try:
            yield workspace
        finally:
            if self.keep:
                with self._lock:
                    self._kept = self._kept or workspace

    @property
    def kept(self) -> Workspace | None:
        return self._kept

    def release(self) -> None:
        with self._lock:
            self._kept = None


class Runtime:
    """
    A network (`CLIPLITModel` or `CLIPLITNetwork`) ready for inference on `device` in `dtype`.

    It runs the network's parts; the passes over an image (`cliplit.engine.passes`, whose `PassRuntime`
    it implements) call them. Methods take and return tensors on `device`:
    - `encode(pixels, workspace)`: (N, 3, h, w) -> features (N, hidden, h, w);
    - `fuse_decode(features, grids, box, height, width, workspace)`: the features of the pixels in
      `box` of a height x width image and the projected pyramid context (one (N, reduction, bin, bin)
      grid per bin, `cliplit.engine.pyramid.project`) -> illumination (N, 1, h, w).

    `workspace` (`with runtime.workspace() as workspace:`, one per image) holds the activations of the
    fused CPU pass (`cliplit.engine.fused_cpu`); the features `encode` returns may live in it and are then
    overwritten by its next `encode` or `fuse_decode`. Elsewhere it is None. With `keep_workspace=True` (the default)
    the runtime keeps the buffers of its last image for the next one, as PyTorch's CUDA caching
    allocator keeps device memory: a batch of photos then never pays for fresh memory again (page
    faults and kernel zeroing). It holds about 640 bytes per
    pixel of the largest image (or tile) seen until `release_workspace()`; a long-running server
    with large uploads may prefer `keep_workspace=False`.
    """

    def __init__(self, model, device=None, dtype=None, channels_last: bool = True, compile: bool = False,
                 keep_workspace: bool = True, workspaces: "WorkspacePool | None" = None):
        parameter = next(model.parameters())
        self.device = resolve_device(device) if device is not None else parameter.device
        self.dtype = resolve_dtype(dtype)
        self.channels_last = channels_last
        self.compiled = bool(compile)
        model = as_network(model).to(self.device, self.dtype).eval()
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        for p in model.parameters():
            p.requires_grad_(False)
        self.model = model
        self.config = model.config
        self.pyramid_pooling = model.pyramid_pooling
        self.illumination_channels = model.config.illumination_channels
        self.bins = tuple(model.pyramid_pooling.bins)
        self.encoder_radius = model.encoder_radius  # receptive fields, for exact tiles
        self.decoder_radius = model.decoder_radius
        use_fused = not self.compiled and fused_cpu_supported(model, self.device, self.dtype, channels_last)
        self.fused = CLIPLITFusedCPU(model) if use_fused else None
        self._encode = model.encode
        self._fuse_decode_maps = self._fuse_decode_eager
        self.workspaces = workspaces or WorkspacePool(keep_workspace)  # shared with scale-matched copies
        if self.compiled:
            self._encode = torch.compile(self._encode, options=COMPILE_OPTIONS, dynamic=False)
            self._fuse_decode_maps = torch.compile(self._fuse_decode_maps, options=COMPILE_OPTIONS, dynamic=False)

    def _fuse_decode_eager(self, features: torch.Tensor, context: list[torch.Tensor]) -> torch.Tensor:
        return self.model.decode(self.model.pyramid_pooling.fuse(features, context))

    @contextmanager
    def workspace(self):
        """
        Buffers for the activations of one image: the kept ones when free, else new ones (fused CPU
        pass only; None elsewhere). Thread-safe: concurrent images get separate buffers.
        """
        if self.fused is None:
            yield None
            return
        with self.workspaces.borrow() as workspace:
            yield workspace

    def release_workspace(self) -> None:
        """Free the buffers kept from the last image."""
        self.workspaces.release()

    def prepare(self, pixels: torch.Tensor) -> torch.Tensor:
        """(1, 3, h, w) on any device -> on this runtime's device and dtype, channels-last if enabled."""
        pixels = sanitize_pixels(pixels.to(self.device, self.dtype))
        return pixels.contiguous(memory_format=torch.channels_last) if self.channels_last else pixels.contiguous()

    def encode(self, pixels: torch.Tensor, workspace: Workspace | None = None) -> torch.Tensor:
        with torch.inference_mode():
            if self.fused is not None:
                return self.fused.encode(self.prepare(pixels), workspace or Workspace())
            return self._encode(self.prepare(pixels))

    def fuse_decode(self, features: torch.Tensor, grids: list[torch.Tensor], box: Box, height: int, width: int,
                    workspace: Workspace | None = None) -> torch.Tensor:
        with torch.inference_mode():
            if self.fused is not None:
                return self.fused.fuse_decode(features, grids, box, height, width, workspace or Workspace())
            context = [c.to(self.dtype) for c in upsample_context(grids, box, height, width)]
            if self.channels_last:
                context = [c.contiguous(memory_format=torch.channels_last) for c in context]
            return self._fuse_decode_maps(features, context)


__all__ = ["Runtime", "WorkspacePool", "PRECISIONS", "resolve_device", "resolve_dtype", "configure_cpu", "physical_cores"]
