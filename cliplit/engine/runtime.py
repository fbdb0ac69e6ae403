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
from . import fused_cpu
from .fast import scale_matched_copy
from .settings import PRECISION_NAMES
from .tiling import Box, average_pooled, upsample_context

PRECISIONS = dict(zip(PRECISION_NAMES, (torch.float32, torch.float16, torch.bfloat16)))
CHANNELS_LAST = torch.channels_last
THP_ENV_VAR = "THP_MEM_ALLOC_ENABLE"  # read by PyTorch's CPU allocator at its first allocation >= 2 MB
COMPILE_OPTIONS = {"freezing": True}  # inductor: fold weights as constants, prepack oneDNN weights
SCALE_DECIMALS = 2  # fast mode: downscaling factors are rounded to this many decimals ...
SCALE_MATCHED_KEPT = 4  # ... and this many scale-matched runtimes are kept per runtime


def resolve_dtype(dtype) -> torch.dtype:
    """None, a torch dtype, or "fp32" / "fp16" / "bf16" -> a torch floating dtype (None is fp32)."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in PRECISIONS.values():
            raise SettingsError(f"precision must be float32, float16 or bfloat16, got {dtype}")
        return dtype
    if str(dtype) not in PRECISIONS:
        raise SettingsError(f"precision must be one of {', '.join(PRECISIONS)}, got {dtype!r}")
    return PRECISIONS[str(dtype)]


def resolve_device(device=None) -> torch.device:
    """None or 'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:N' or a torch device."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise SettingsError(f"device {device!r} is not a device (auto, cpu, cuda or cuda:N)") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise SettingsError(f"device {device}: CUDA is not available on this machine (use cpu or auto)")
    if resolved.type not in ("cpu", "cuda"):
        raise SettingsError(f"device {device!r}: only cpu and cuda are supported")
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
        self._kept: fused_cpu.Workspace | None = None
        self._lock = threading.Lock()

    @contextmanager
    def borrow(self):
        with self._lock:
            workspace, self._kept = self._kept, None
        workspace = workspace or fused_cpu.Workspace()
        try:
            yield workspace
        finally:
            if self.keep:
                with self._lock:
                    self._kept = self._kept or workspace

    @property
    def kept(self) -> fused_cpu.Workspace | None:
        return self._kept

    def release(self) -> None:
        with self._lock:
            self._kept = None


class Runtime:
    """
    A network (`CLIPLITModel` or `CLIPLITNetwork`) ready for inference on `device` in `dtype`.

    Methods take and return tensors on `device`:
    - `whole(pixels)`: (1, 3, H, W) -> illumination (1, 1, H, W), the forward pass on the whole image;
    - `encode(pixels, workspace)`: (1, 3, h, w) -> features (1, hidden, h, w);
    - `fuse_decode(features, grids, box, height, width, workspace)`: the features of the pixels in
      `box` of a height x width image and the projected pyramid context (one (1, reduction, bin, bin)
      grid per bin, see `project_context`) -> illumination (1, 1, h, w).

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
            model = model.to(memory_format=CHANNELS_LAST)
        for p in model.parameters():
            p.requires_grad_(False)
        self.model = model
        self.config = model.config
        self.bins = tuple(model.pyramid_pooling.bins)
        self.encoder_radius = model.encoder_radius  # receptive fields, for exact tiles
        self.decoder_radius = model.decoder_radius
        use_fused = not self.compiled and fused_cpu.fused_cpu_supported(model, self.device, self.dtype, channels_last)
        self.fused = fused_cpu.CLIPLITFusedCPU(model) if use_fused else None
        self._encode = model.encode
        self._fuse_decode_maps = self._fuse_decode_eager
        self._workspaces = workspaces or WorkspacePool(keep_workspace)
        self._scale_matched: dict[tuple[float, float], Runtime] = {}
        self._scale_matched_lock = threading.Lock()
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
        with self._workspaces.borrow() as workspace:
            yield workspace

    def release_workspace(self) -> None:
        """Free the buffers kept from the last image."""
        self._workspaces.release()

    def scale_matched(self, scale_y: float, scale_x: float) -> "Runtime":
        """
        This runtime for images downscaled by `scale_y` x `scale_x`: the same settings, the model's 3x3
        kernels scale-matched (`cliplit.engine.fast.scale_matched_copy`), the kept buffers shared. Scales are
        rounded to `SCALE_DECIMALS` decimals, and the last `SCALE_MATCHED_KEPT` runtimes are kept, so a
        batch of photos builds (and, with `compile`, compiles) one per distinct pair of factors.
        """
        key = (round(scale_y, SCALE_DECIMALS), round(scale_x, SCALE_DECIMALS))
        if key == (1.0, 1.0):
            return self
        with self._scale_matched_lock:
            matched = self._scale_matched.pop(key, None)
            if matched is None:
                model = scale_matched_copy(self.model, *key)
                matched = Runtime(model, self.device, self.dtype, self.channels_last, self.compiled,
                                  workspaces=self._workspaces)
            self._scale_matched[key] = matched  # most recently used last
            while len(self._scale_matched) > SCALE_MATCHED_KEPT:
                self._scale_matched.pop(next(iter(self._scale_matched)))
            return matched

    def prepare(self, pixels: torch.Tensor) -> torch.Tensor:
        """(1, 3, h, w) on any device -> on this runtime's device and dtype, channels-last if enabled."""
        pixels = sanitize_pixels(pixels.to(self.device, self.dtype))
        return pixels.contiguous(memory_format=CHANNELS_LAST) if self.channels_last else pixels.contiguous()

    def whole(self, pixels: torch.Tensor) -> torch.Tensor:
        """
        The forward pass on the whole image, as one tile covering it: encode, pool the whole feature map
        (`average_pooled`: float64 sums, as the tiled pass 1), fuse and decode. `pixels`: (1, 3, H, W); on
        the eager path (not the fused CPU pass) also a batch (N, 3, H, W) of images of one size, each
        pooled on its own: the same maps as N single passes, in one pass on the device.
        """
        height, width = pixels.shape[-2:]
        with torch.inference_mode(), self.workspace() as workspace:
            features = self.encode(pixels, workspace)
            grids = self.project_context(average_pooled(features, self.bins))
            return self.fuse_decode(features, grids, Box(0, 0, height, width), height, width, workspace)

    def encode(self, pixels: torch.Tensor, workspace: fused_cpu.Workspace | None = None) -> torch.Tensor:
        with torch.inference_mode():
            if self.fused is not None:
                return self.fused.encode(self.prepare(pixels), workspace or fused_cpu.Workspace())
            return self._encode(self.prepare(pixels))

    def fuse_decode(self, features: torch.Tensor, grids: list[torch.Tensor], box: Box, height: int, width: int,
                    workspace: fused_cpu.Workspace | None = None) -> torch.Tensor:
        with torch.inference_mode():
            if self.fused is not None:
                return self.fused.fuse_decode(features, grids, box, height, width, workspace or fused_cpu.Workspace())
            context = [c.to(self.dtype) for c in upsample_context(grids, box, height, width)]
            if self.channels_last:
                context = [c.contiguous(memory_format=CHANNELS_LAST) for c in context]
            return self._fuse_decode_maps(features, context)

    def project_context(self, pooled: list[torch.Tensor]) -> list[torch.Tensor]:
        """Average-pooled grids (1, hidden, bin, bin) -> projected grids (1, reduction, bin, bin), float32."""
        with torch.inference_mode():
            stages = self.model.pyramid_pooling.context_from_pooled([p.to(self.device, self.dtype) for p in pooled])
            return [grid.float() for grid in stages]


__all__ = ["Runtime", "WorkspacePool", "PRECISIONS", "resolve_device", "resolve_dtype", "configure_cpu", "physical_cores"]
