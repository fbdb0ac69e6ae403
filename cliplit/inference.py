"""Running a `CLIPLITModel` on one image: decode, estimate the illumination, divide, encode.

Modes (keyword `mode`):

- "exact" (default): the published network, same pixels (within one 8-bit level) as the authors'
  fp32 evaluation. Runs channels-last under `torch.inference_mode` (oneDNN on the CPU), optionally
  compiled (`compile=True`), whole image in one pass when it fits the memory available, else in
  exact overlapping tiles (`cliplit.tiling`); `tile_size=` forces a tile size (0: whole image).
- "fast": the scale-matched network at 1/`FAST_DOWNSCALE` resolution, bicubically upsampled (`cliplit.fast`).

`dtype=` ("fp32", "fp16", "bf16" or a torch dtype) selects the precision of the network; fp32 (the
default) is the exact one; half precision is meant for GPUs.
"""

from __future__ import annotations

import numpy as np
import torch

from .fast import FAST_DOWNSCALE, estimate_fast
from .image_processing_cliplit import DecodedImage, decode_image, encode_array, encode_pil
from .modeling_cliplit import apply_illumination
from .runtime import Runtime, resolve_dtype
from .tiling import auto_tile_size, estimate_tiled

MODES = ("exact", "fast")
COMPILED_TILE_SIZE = 512  # default tile of a compiled runtime: every image reuses one compiled shape


def make_runtime(model, dtype=None, compile: bool = False, device=None, keep_workspace: bool = True) -> Runtime:
    """
    A `Runtime` for `model` on its device (or `device`); build it once to run many images.
    `keep_workspace`: keep the CPU activation buffers from one image to the next (see `Runtime`).
    """
    return Runtime(model, device=device, dtype=dtype, compile=compile, keep_workspace=keep_workspace)


def _check_pixels(pixel_values: torch.Tensor) -> None:
    if pixel_values.ndim != 4 or pixel_values.shape[0] != 1 or pixel_values.shape[1] != 3:
        raise ValueError(f"pixel_values must have shape (1, 3, H, W), got {tuple(pixel_values.shape)}")
    if min(pixel_values.shape[-2:]) < 2:
        raise ValueError(f"the image must be at least 2x2 pixels, got {tuple(pixel_values.shape[-2:])}")


def estimate_illumination(
    model,
    pixel_values: torch.Tensor,
    mode: str = "exact",
    tile_size: int | None = None,
    dtype=None,
    compile: bool = False,
    runtime: Runtime | None = None,
    fast_downscale: float = FAST_DOWNSCALE,
) -> torch.Tensor:
    """
    `pixel_values`: (1, 3, H, W) float32 in [0, 1] on any device -> illumination (1, 1, H, W) float32
    on the same device, computed on the model's device (or `runtime`'s, when one is given).

    `tile_size`: None chooses from the image size and the free memory; 0 forces one whole-image
    pass; n > 0 uses exact tiles of n x n output pixels. In "fast" mode it applies to the
    low-resolution pass.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if tile_size is not None and int(tile_size) < 0:
        raise ValueError(f"tile_size must be >= 0 (0: whole image), got {tile_size}")
    _check_pixels(pixel_values)
    if runtime is None:
        runtime = make_runtime(model, dtype=dtype, compile=compile)
    elif dtype is not None and resolve_dtype(dtype) != runtime.dtype:
        raise ValueError(f"dtype {dtype} differs from the runtime's {runtime.dtype}")

    def exact(rt: Runtime, pixels: torch.Tensor) -> torch.Tensor:
        height, width = pixels.shape[-2:]
        if tile_size is not None:
            tile = int(tile_size)
        else:
            tile = auto_tile_size(height, width, rt.device, rt.dtype)
            if rt.compiled:  # one tile shape: compiled once, not once per image size
                tile = min(tile or COMPILED_TILE_SIZE, COMPILED_TILE_SIZE)
        if not tile or tile >= max(height, width):
            return rt.whole(pixels).float()
        return estimate_tiled(rt, pixels, tile)

    with torch.inference_mode():
        if mode == "fast":
            illumination = estimate_fast(runtime, pixel_values, fast_downscale, estimate_low=exact)
        else:
            illumination = exact(runtime, pixel_values)
    return illumination.float().to(pixel_values.device)


def enhance_decoded(
    model,
    image: DecodedImage,
    strength: float = 1.0,
    mode: str = "exact",
    tile_size: int | None = None,
    dtype=None,
    **kwargs,
) -> tuple[DecodedImage, np.ndarray]:
    """
    Enhance a `DecodedImage`. Returns the enhanced image (same alpha, bit depth and grayscale-ness)
    and the illumination map as an (H, W) float32 array. `mode`, `tile_size`, `dtype` and `kwargs`
    (`compile`, `runtime`, `fast_downscale`) go to `estimate_illumination`.
    """
    pixel_values = torch.from_numpy(image.pixels).permute(2, 0, 1).unsqueeze(0)
    illumination = estimate_illumination(model, pixel_values, mode=mode, tile_size=tile_size, dtype=dtype, **kwargs)
    with torch.inference_mode():
        enhanced = apply_illumination(pixel_values, illumination, strength)
    pixels = enhanced[0].permute(1, 2, 0).numpy()
    return DecodedImage(pixels, image.alpha, image.bit_depth, image.grayscale), illumination[0, 0].numpy()


def enhance_image(model, image, strength: float = 1.0, output_type: str = "pil", **kwargs):
    """
    Enhance a PIL image, numpy array (H, W[, C]) or tensor (C, H, W) in [0, 1].

    `output_type`: "pil" (default; 16-bit colour, which PIL cannot hold, comes back as a uint16 array),
    "np" (uint8 / uint16 array with the input's channels) or "pt" (float (3, H, W) tensor in [0, 1]).
    Other keyword arguments (`mode`, `tile_size`, `dtype`, `compile`, `runtime`, `fast_downscale`) go to
    `estimate_illumination`.
    """
    if output_type not in ("pil", "np", "pt"):
        raise ValueError(f"output_type must be 'pil', 'np' or 'pt', got {output_type!r}")
    enhanced, _ = enhance_decoded(model, decode_image(image), strength, **kwargs)
    if output_type == "pt":
        return torch.from_numpy(enhanced.pixels).permute(2, 0, 1)
    if output_type == "np" or (enhanced.bit_depth == 16 and not enhanced.grayscale):
        return encode_array(enhanced)
    return encode_pil(enhanced)


__all__ = ["estimate_illumination", "enhance_decoded", "enhance_image", "make_runtime", "MODES"]
