"""The inference engine's one object: `Enhancer`, built once with its settings, then called per image
(as Real-ESRGAN's `RealESRGANer`). The network knows nothing of it.

    enhancer = Enhancer(model, mode="fast", precision="fp32", tile_size=None)
    enhanced = enhancer.enhance(Image.open("backlit.jpg"))          # a PIL image

Settings:

- `mode`: "exact" (default) is the published network, the same pixels (within one 8-bit level) as
  the authors' fp32 evaluation, whole image in one pass when it fits the memory available, else in
  exact overlapping tiles (`cliplit.engine.tiling`); "fast" runs the scale-matched network at
  1/`fast_downscale` resolution and upsamples its map bicubically (`cliplit.engine.fast`).
- `strength`: exponent of the illumination map (0: unchanged, 1: published result); default the
  model's `config.default_strength`; `enhance(image, strength=...)` overrides it per image.
- `tile_size`: None chooses from the image size and the free memory; 0 forces one whole-image pass;
  n >= `settings.MIN_TILE_SIZE` uses exact tiles of n x n output pixels (in fast mode, of the low-resolution pass).
- `precision`: "fp32" (default, the exact one), "fp16" or "bf16" (for GPUs; bf16 also on CPUs with AMX,
  within about 2 levels: docs/engine.md), or a torch dtype.
- `denoise`: "off" (default: the published pixels), "auto" or a noise level S in 8-bit levels: clean
  the noise and JPEG blocks that the gain amplifies, in proportion to it (`cliplit.engine.denoise`,
  docs/denoise.md); the illumination map stays the network's.
- `device`: where the network runs (default: where the model is); `compile`: `torch.compile` it;
  `keep_workspace`: keep the CPU activation buffers from one image to the next (see `Runtime`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..imaging.codec import DecodedImage, decode_image, encode_array, encode_pil
from ..model.architecture import check_strength, resolve_strength
from ..model.network import apply_illumination
from .denoise import DenoisePlan, denoised_input
from .fast import estimate_fast
from .runtime import Runtime
from .settings import DEFAULT_MODE, DENOISE_OFF, FAST_DOWNSCALE, check_denoise, check_settings
from .tiling import auto_tile_size, estimate_tiled

OUTPUT_TYPES = ("pil", "np", "pt")
COMPILED_TILE_SIZE = 512  # default tile of a compiled runtime: every image reuses one compiled shape
MIN_IMAGE_SIDE = 2


class Enhancer:
    """
    A CLIP-LIT model (`CLIPLITModel` or `CLIPLITNetwork`) prepared once with the engine's settings (see
    the module docstring); `enhance(image)` per image. Thread-safe: concurrent images get separate buffers.
    """

    def __init__(self, model, *, mode: str = DEFAULT_MODE, strength: float | None = None, tile_size: int | None = None,
                 precision=None, device=None, compile: bool = False, fast_downscale: float = FAST_DOWNSCALE,
                 keep_workspace: bool = True, denoise=DENOISE_OFF):
        check_settings(mode, tile_size, fast_downscale, strength)
        self.denoise = check_denoise(denoise)
        self.mode = mode
        self.tile_size = tile_size
        self.fast_downscale = float(fast_downscale)
        self.strength = resolve_strength(model.config, strength)
        self.runtime = Runtime(model, device=device, dtype=precision, compile=compile, keep_workspace=keep_workspace)

    @property
    def device(self) -> torch.device:
        return self.runtime.device

    def release_workspace(self) -> None:
        """Free the activation buffers kept from the last image."""
        self.runtime.release_workspace()

    # ------------------------------------------------------------------------------------ tensors
    def illumination(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """
        `pixel_values`: (1, 3, H, W) float32 in [0, 1] on any device -> illumination map (1, 1, H, W)
        float32 on the same device, computed with this engine's settings.
        """
        if pixel_values.ndim != 4 or pixel_values.shape[0] != 1 or pixel_values.shape[1] != 3:
            raise ValueError(f"pixel_values must have shape (1, 3, H, W), got {tuple(pixel_values.shape)}")
        if min(pixel_values.shape[-2:]) < MIN_IMAGE_SIDE:
            raise ValueError(f"the image must be at least 2x2 pixels, got {tuple(pixel_values.shape[-2:])}")
        with torch.inference_mode():
            if self.mode == "fast":
                illumination = estimate_fast(self.runtime, pixel_values, self.fast_downscale, estimate_low=self._exact)
            else:
                illumination = self._exact(self.runtime, pixel_values)
        return illumination.float().to(pixel_values.device)

    def _exact(self, runtime: Runtime, pixels: torch.Tensor) -> torch.Tensor:
        height, width = pixels.shape[-2:]
        tile = self.tile_size
        if tile is None:
            halo = runtime.encoder_radius + runtime.decoder_radius
            tile = auto_tile_size(height, width, runtime.device, runtime.dtype, halo=halo)
            if runtime.compiled:  # one tile shape: compiled once, not once per image size
                tile = min(tile or COMPILED_TILE_SIZE, COMPILED_TILE_SIZE)
        if not tile or tile >= max(height, width):
            return runtime.whole(pixels).float()
        return estimate_tiled(runtime, pixels, tile)

    # ------------------------------------------------------------------------------------ images
    def enhance_decoded(self, image: DecodedImage, strength: float | None = None, denoise=None) -> tuple[DecodedImage, np.ndarray]:
        """
        Enhance a `DecodedImage`. Returns the enhanced image (same alpha, bit depth and grayscale-ness;
        its `denoised`: what the denoising did, or None) and the illumination map as an (H, W) float32
        array. `denoise`: this image's setting instead of the engine's (None), or a `DenoisePlan`.
        """
        strength = self.strength if strength is None else check_strength(strength)
        pixel_values = torch.from_numpy(image.pixels).permute(2, 0, 1).unsqueeze(0)
        return self._apply(image, pixel_values, self.illumination(pixel_values), strength, denoise)

    def enhance_frames(self, images: list[DecodedImage], strength: float | None = None, denoise=None) -> list[DecodedImage]:
        """
        Enhance images of one size, such as a video's frames: in one batched pass on the device where the
        engine can (exact mode on the eager path, as on a GPU, when the whole batch fits in memory as one
        pass), else one by one. The same images as `enhance_decoded` gives for each (`denoise`: as there).
        """
        if not self._batches(images):
            return [self.enhance_decoded(image, strength, denoise)[0] for image in images]
        strength = self.strength if strength is None else check_strength(strength)
        batch = torch.from_numpy(np.stack([image.pixels for image in images])).permute(0, 3, 1, 2)
        with torch.inference_mode():
            maps = self.runtime.whole(batch).float().to(batch.device)
        return [self._apply(image, batch[i : i + 1], maps[i : i + 1], strength, denoise)[0] for i, image in enumerate(images)]

    def _batches(self, images: list[DecodedImage]) -> bool:
        """Whether `enhance_frames` runs `images` as one batch: more than one, one size, exact mode, the
        eager path (the fused CPU pass is for one image), and the batch fits in memory as one pass."""
        if len(images) < 2 or self.mode != "exact" or self.runtime.fused is not None or self.runtime.compiled:
            return False
        height, width = images[0].pixels.shape[:2]
        if any(image.pixels.shape != images[0].pixels.shape for image in images) or min(height, width) < MIN_IMAGE_SIDE:
            return False
        if self.tile_size is not None and self.tile_size < max(height, width):
            return False
        runtime = self.runtime
        halo = runtime.encoder_radius + runtime.decoder_radius
        return auto_tile_size(height * len(images), width, runtime.device, runtime.dtype, halo=halo) is None

    def _apply(self, image: DecodedImage, pixel_values: torch.Tensor, illumination: torch.Tensor,
               strength: float, denoise=None) -> tuple[DecodedImage, np.ndarray]:
        """`image` divided by its map `illumination` (1, 1, H, W) (`pixel_values`: its pixels, (1, 3, H, W)),
        cleaned first when `denoise` (None: the engine's setting) is on. Returns the enhanced image and the map as (H, W) float32."""
        denoise = self.denoise if denoise is None else denoise if isinstance(denoise, DenoisePlan) else check_denoise(denoise)
        plan = None
        if denoise != DENOISE_OFF:  # the map stays the network's: only the divided pixels are cleaned
            cleaned, plan = denoised_input(image.pixels, illumination[0, 0].numpy(), strength, denoise, image.jpeg,
                                           self.tile_size)
            pixel_values = torch.from_numpy(cleaned).permute(2, 0, 1).unsqueeze(0)
        with torch.inference_mode():
            enhanced = apply_illumination(pixel_values, illumination, strength)
        pixels = enhanced[0].permute(1, 2, 0).numpy()
        return dataclasses.replace(image, pixels=pixels, denoised=plan), illumination[0, 0].numpy()  # alpha, depth, metadata kept

    def enhance(self, image, strength: float | None = None, output_type: str = "pil"):
        """
        Enhance a PIL image, numpy array (H, W[, C]) or tensor (C, H, W) in [0, 1].

        `output_type`: "pil" (default; 16-bit colour, which PIL cannot hold, comes back as a uint16
        array), "np" (uint8 / uint16 array with the input's channels) or "pt" (float (3, H, W) tensor
        in [0, 1]). Alpha is kept aside and put back, grayscale stays grayscale, 16-bit stays 16-bit.
        """
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be 'pil', 'np' or 'pt', got {output_type!r}")
        enhanced, _ = self.enhance_decoded(decode_image(image), strength)
        if output_type == "pt":
            return torch.from_numpy(enhanced.pixels).permute(2, 0, 1)
        if output_type == "np" or (enhanced.bit_depth == 16 and not enhanced.grayscale):
            return encode_array(enhanced)
        return encode_pil(enhanced)


def enhance(model, image, strength: float | None = None, output_type: str = "pil", **settings):
    """One-line convenience: `Enhancer(model, **settings).enhance(image, strength, output_type)`.
    To enhance many images, build one `Enhancer` and reuse it."""
    return Enhancer(model, **settings).enhance(image, strength, output_type)


__all__ = ["COMPILED_TILE_SIZE", "Enhancer", "enhance"]
