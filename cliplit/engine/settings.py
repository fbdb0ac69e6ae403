"""The engine's settings: names, defaults and checks, importable without torch (the CLI's `--help` and
option checks use them before anything heavy is loaded)."""

from __future__ import annotations

import math

from ..errors import SettingsError
from ..model.architecture import check_strength

MODES = ("exact", "fast")
DEFAULT_MODE = "exact"
PRECISION_NAMES = ("fp32", "fp16", "bf16")
DEFAULT_PRECISION = "fp32"
FAST_DOWNSCALE = 4  # fast mode: the network runs on (H / 4) x (W / 4) pixels
MIN_TILE_SIZE = 16  # smallest tile a user may ask for (smaller tiles are nearly all halo)
DENOISE_OFF, DENOISE_AUTO = "off", "auto"  # `denoise`: off (published pixels), auto, or a noise level S (docs/denoise.md)
# The largest noise level: 8-bit values cannot vary more than this standard deviation (half of them 0, half 255).
MAX_DENOISE_LEVEL = 127.5


def check_denoise(denoise) -> str | float:
    """
    The `denoise` setting checked: "off" (also for None), "auto", or a noise level S in 8-bit levels from 0 to
    `MAX_DENOISE_LEVEL` (a number or its text); raises `SettingsError` otherwise.
    """
    if denoise is None or denoise == DENOISE_OFF:
        return DENOISE_OFF
    if denoise == DENOISE_AUTO:
        return DENOISE_AUTO
    try:
        level = float(denoise) if not isinstance(denoise, bool) else math.nan
    except (TypeError, ValueError):
        level = math.nan
    if not (math.isfinite(level) and 0 <= level <= MAX_DENOISE_LEVEL):
        raise SettingsError(f"denoise must be off, auto or a noise level from 0 to {MAX_DENOISE_LEVEL:g} (a standard deviation "
                            f"in 8-bit levels: 8-bit values cannot vary more), got {denoise!r}")
    return level


def check_settings(mode: str = DEFAULT_MODE, tile_size: int | None = None, fast_downscale: float = FAST_DOWNSCALE,
                   strength: float | None = None) -> None:
    """Raise `SettingsError` for a setting the engine cannot run with (before any model is loaded)."""
    if mode not in MODES:
        raise SettingsError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if tile_size is not None and (isinstance(tile_size, bool) or not isinstance(tile_size, int)
                                  or (tile_size != 0 and tile_size < MIN_TILE_SIZE)):
        raise SettingsError(f"tile size must be 0 (whole image) or at least {MIN_TILE_SIZE}, got {tile_size!r}")
    if isinstance(fast_downscale, bool) or not (isinstance(fast_downscale, (int, float))
                                                and math.isfinite(fast_downscale) and fast_downscale >= 1):
        raise SettingsError(f"fast-mode downscale must be a number >= 1 (1: full resolution), got {fast_downscale!r}")
    if strength is not None:
        try:
            check_strength(strength)
        except ValueError as error:
            raise SettingsError(str(error)) from None


__all__ = ["DENOISE_AUTO", "DENOISE_OFF", "MAX_DENOISE_LEVEL", "check_denoise", "DEFAULT_MODE", "DEFAULT_PRECISION", "FAST_DOWNSCALE", "MIN_TILE_SIZE", "MODES", "PRECISION_NAMES",
           "check_settings"]
