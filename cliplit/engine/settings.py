"""The engine's settings: one frozen `EngineSettings`, checked once when built, importable without torch
(the CLI's `--help` and option checks use it before anything heavy is loaded).

Every front end (the CLI, the pipeline, the app, `VideoEnhancer`, `evaluate`, Ray, spandrel, ComfyUI)
builds one `EngineSettings` and hands it to `Enhancer` (or to `EnhancerCache`, keyed by it); none of them
lists the fields again. Adding an engine option is one field here, one check in `__post_init__`, and one
flag where a front end exposes it.
"""

from __future__ import annotations

import dataclasses
import math
import re

from ..errors import SettingsError
from ..model.architecture import check_strength

MODES = ("exact", "fast")
DEFAULT_MODE = "exact"
PRECISION_NAMES = ("fp32", "fp16", "bf16")
DEFAULT_PRECISION = "fp32"
# torch dtypes named by their `str()`, so that a dtype is accepted without importing torch here
TORCH_DTYPE_NAMES = {"torch.float32": "fp32", "torch.float16": "fp16", "torch.bfloat16": "bf16"}
AUTO_DEVICE = "auto"
DEVICE_PATTERN = re.compile(r"^(cpu|cuda)(:\d+)?$")  # the devices the engine runs on, besides "auto"
FAST_DOWNSCALE = 4  # fast mode: the network runs on (H / 4) x (W / 4) pixels
MIN_TILE_SIZE = 16  # smallest tile a user may ask for (smaller tiles are nearly all halo)
DENOISE_OFF, DENOISE_AUTO = "off", "auto"  # `denoise`: off (published pixels), auto, or a noise level S (docs/denoise.md)


def check_denoise(denoise) -> str | float:
    """
    The `denoise` setting checked: "off" (also for None), "auto", or a noise level S >= 0 in 8-bit levels
    (a number or its text); raises `SettingsError` otherwise.
    """
    if denoise is None or denoise == DENOISE_OFF:
        return DENOISE_OFF
    if denoise == DENOISE_AUTO:
        return DENOISE_AUTO
    try:
        level = float(denoise) if not isinstance(denoise, bool) else math.nan
    except (TypeError, ValueError):
        level = math.nan
    if not (math.isfinite(level) and level >= 0):
        raise SettingsError(f"denoise must be off, auto or a noise level >= 0 (in 8-bit levels), got {denoise!r}")
    return level


def check_precision(precision) -> str:
    """None (fp32), "fp32" / "fp16" / "bf16", or a torch dtype among those -> its name; `SettingsError` otherwise."""
    if precision is None:
        return DEFAULT_PRECISION
    if str(precision) in TORCH_DTYPE_NAMES:
        return TORCH_DTYPE_NAMES[str(precision)]
    if type(precision).__name__ == "dtype":  # another torch dtype
        raise SettingsError(f"precision must be float32, float16 or bfloat16, got {precision}")
    if precision not in PRECISION_NAMES:
        raise SettingsError(f"precision must be one of {', '.join(PRECISION_NAMES)}, got {precision!r}")
    return precision


def check_device(device) -> str | None:
    """None (where the model is), "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:N" or a torch
    device -> its text; `SettingsError` for anything else. Whether CUDA is present is checked when the
    engine is built (`cliplit.engine.runtime.resolve_device`)."""
    if device is None or device == AUTO_DEVICE:
        return device
    text = str(device)
    if not DEVICE_PATTERN.match(text):
        raise SettingsError(f"device {device!r} is not a device cliplit runs on (auto, cpu, cuda or cuda:N)")
    return text


@dataclasses.dataclass(frozen=True)
class EngineSettings:
    """
    How an `Enhancer` runs an image (docs/engine.md). Checked when built: a bad value raises `SettingsError`
    with one line, before any model is loaded. Frozen and hashable: `EnhancerCache` keys its engines by it.

    - `mode`: "exact" (default; the published network's pixels, whole image or exact tiles) or "fast" (the
      scale-matched network at 1/`fast_downscale` resolution, docs/fast-mode.md);
    - `strength`: exponent of the illumination map (0: unchanged, 1: published result); None: the model's
      `config.default_strength`;
    - `tile_size`: None chooses from the image size and the free memory; 0 forces one whole-image pass;
      n >= `MIN_TILE_SIZE` uses exact tiles of n x n output pixels (in fast mode, of the low-resolution pass);
    - `precision`: "fp32" (default, the exact one), "fp16" or "bf16" (a torch dtype is accepted and kept by name);
    - `device`: None (where the model is), "auto", "cpu", "cuda" or "cuda:N" (a torch device is kept as text);
    - `denoise`: "off" (default: the published pixels), "auto" or a noise level in 8-bit levels (docs/denoise.md);
    - `compile`: `torch.compile` the network; `fast_downscale`: fast mode's factor (>= 1);
    - `keep_workspace`: keep the CPU activation buffers from one image to the next (a server says False).
    """

    mode: str = DEFAULT_MODE
    strength: float | None = None
    tile_size: int | None = None
    precision: str = DEFAULT_PRECISION
    device: str | None = None
    denoise: str | float = DENOISE_OFF
    compile: bool = False
    fast_downscale: float = FAST_DOWNSCALE
    keep_workspace: bool = True

    def __post_init__(self):
        if self.mode not in MODES:
            raise SettingsError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        tile = self.tile_size
        if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or (tile != 0 and tile < MIN_TILE_SIZE)):
            raise SettingsError(f"tile size must be 0 (whole image) or at least {MIN_TILE_SIZE}, got {tile!r}")
        downscale = self.fast_downscale
        if isinstance(downscale, bool) or not (isinstance(downscale, (int, float)) and math.isfinite(downscale) and downscale >= 1):
            raise SettingsError(f"fast-mode downscale must be a number >= 1 (1: full resolution), got {downscale!r}")
        if self.strength is not None:
            try:
                check_strength(self.strength)
            except ValueError as error:
                raise SettingsError(str(error)) from None
        for name in ("compile", "keep_workspace"):
            if not isinstance(getattr(self, name), bool):
                raise SettingsError(f"{name} must be True or False, got {getattr(self, name)!r}")
        object.__setattr__(self, "fast_downscale", float(downscale))
        object.__setattr__(self, "precision", check_precision(self.precision))
        object.__setattr__(self, "device", check_device(self.device))
        object.__setattr__(self, "denoise", check_denoise(self.denoise))

    def replace(self, **changes) -> "EngineSettings":
        """These settings with `changes` (field names and values), checked again."""
        names = [field.name for field in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise SettingsError(f"unknown engine setting {', '.join(map(repr, unknown))} (the settings are {', '.join(names)})")
        return dataclasses.replace(self, **changes) if changes else self


def engine_settings(settings: EngineSettings | None = None, **changes) -> EngineSettings:
    """`settings` (default: `EngineSettings()`) with `changes` applied: how every front end takes either
    an `EngineSettings` or its fields as keyword arguments."""
    if settings is not None and not isinstance(settings, EngineSettings):
        raise SettingsError(f"settings must be an EngineSettings, got {type(settings).__name__}")
    return (settings or EngineSettings()).replace(**changes)


__all__ = ["AUTO_DEVICE", "DEFAULT_MODE", "DEFAULT_PRECISION", "DENOISE_AUTO", "DENOISE_OFF", "EngineSettings", "FAST_DOWNSCALE",
           "MIN_TILE_SIZE", "MODES", "PRECISION_NAMES", "check_denoise", "check_device", "check_precision", "engine_settings"]
