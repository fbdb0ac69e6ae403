"""The inference engine's one object: `Enhancer`, built once with its settings, then called per image
(as Real-ESRGAN's `RealESRGANer`). The network knows nothing of it.

    enhancer = Enhancer(model, mode="fast")                          # or Enhancer(model, EngineSettings(...))
    enhanced = enhancer.enhance(Image.open("backlit.jpg"))          # a PIL image

The settings are one frozen `cliplit.engine.settings.EngineSettings` (mode, strength, tile size, precision,
device, denoise, compile, fast-mode factor, buffers), checked when built; `EnhancerCache` keeps one engine
per settings for a model (what the app and the integrations use).

The path of one image, each engine module visited once:

1. `Enhancer.enhance` decodes it (`cliplit.imaging.codec`) into (H, W, 3) floats in [0, 1];
2. `Enhancer.illumination` runs the network: in fast mode `cliplit.engine.fast` downscales the image and
   picks the scale-matched runtime; `cliplit.engine.passes.exact_illumination` chooses the whole pass or
   exact tiles (`cliplit.engine.memory`, `cliplit.engine.tiles`) and drives the runtime
   (`cliplit.engine.runtime`, on the CPU `cliplit.engine.fused_cpu`) with the pyramid context math
   (`cliplit.engine.pyramid`); fast mode brings the map back to full resolution bicubically;
3. `Enhancer._apply` cleans the pixels the gain would amplify when `denoise` is on (`cliplit.engine.denoise`)
   and divides them by the map (`cliplit.model.network.apply_illumination`);
4. `Enhancer.enhance` encodes the result with the input's alpha, bit depth and grayscale-ness.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict

import numpy as np
import torch

from ..imaging.codec import DecodedImage, decode_image, encode_array, encode_pil, quantize
from ..model.architecture import check_strength, resolve_strength
from ..model.network import apply_illumination
from .denoise import DenoisePlan, denoised_input
from .fast import ScaleMatchedRuntimes, estimate_fast
from .memory import auto_tile_size
from .passes import exact_illumination, whole_pass
from .runtime import Runtime
from .settings import DENOISE_OFF, EngineSettings, check_denoise, engine_settings

OUTPUT_TYPES = ("pil", "np", "pt")
MIN_IMAGE_SIDE = 2
CACHED_ENGINES = 4  # engines an `EnhancerCache` keeps (the least recently used is dropped)


class Enhancer:
    """
    A CLIP-LIT model (`CLIPLITModel` or `CLIPLITNetwork`) prepared once with `settings` (an `EngineSettings`;
    keyword arguments change its fields: `Enhancer(model, mode="fast")`); `enhance(image)` per image.
    Thread-safe: concurrent images get separate buffers.
    """

    def __init__(self, model, settings: EngineSettings | None = None, **changes):
        self.settings = engine_settings(settings, **changes)
        self.strength = resolve_strength(model.config, self.settings.strength)
        self.runtime = Runtime(model, device=self.settings.device, dtype=self.settings.precision,
                               compile=self.settings.compile, keep_workspace=self.settings.keep_workspace)
        self._scale_matched = ScaleMatchedRuntimes(self.runtime)

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
        settings = self.settings
        with torch.inference_mode():
            if settings.mode == "fast":
                illumination = estimate_fast(self._scale_matched, pixel_values, settings.fast_downscale, self._exact)
            else:
                illumination = self._exact(self.runtime, pixel_values)
        return illumination.float().to(pixel_values.device)

    def _exact(self, runtime: Runtime, pixels: torch.Tensor) -> torch.Tensor:
        return exact_illumination(runtime, pixels, self.settings.tile_size)

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
        maps = whole_pass(self.runtime, batch).float().to(batch.device)
        return [self._apply(image, batch[i : i + 1], maps[i : i + 1], strength, denoise)[0] for i, image in enumerate(images)]

    def _batches(self, images: list[DecodedImage]) -> bool:
        """Whether `enhance_frames` runs `images` as one batch: more than one, one size, exact mode, the
        eager path (the fused CPU pass is for one image), and the batch fits in memory as one pass."""
        if len(images) < 2 or self.settings.mode != "exact" or self.runtime.fused is not None or self.runtime.compiled:
            return False
        height, width = images[0].pixels.shape[:2]
        if any(image.pixels.shape != images[0].pixels.shape for image in images) or min(height, width) < MIN_IMAGE_SIDE:
            return False
        tile = self.settings.tile_size
        if tile is not None and tile < max(height, width):
            return False
        runtime = self.runtime
        halo = runtime.encoder_radius + runtime.decoder_radius
        return auto_tile_size(height * len(images), width, runtime.device, runtime.dtype, halo=halo) is None

    def _apply(self, image: DecodedImage, pixel_values: torch.Tensor, illumination: torch.Tensor,
               strength: float, denoise=None) -> tuple[DecodedImage, np.ndarray]:
        """`image` divided by its map `illumination` (1, 1, H, W) (`pixel_values`: its pixels, (1, 3, H, W)),
        cleaned first when `denoise` (None: the engine's setting) is on. Returns the enhanced image and the map as (H, W) float32."""
        settings = self.settings
        denoise = settings.denoise if denoise is None else denoise if isinstance(denoise, DenoisePlan) else check_denoise(denoise)
        plan = None
        if denoise != DENOISE_OFF:  # the map stays the network's: only the divided pixels are cleaned
            cleaned, plan = denoised_input(image.pixels, illumination[0, 0].numpy(), strength, denoise, image.jpeg,
                                           settings.tile_size)
        with torch.inference_mode():
            enhanced = apply_illumination(pixel_values, illumination, strength)
            if plan is not None:
                published = enhanced
                enhanced = apply_illumination(torch.from_numpy(cleaned).permute(2, 0, 1).unsqueeze(0), illumination, strength)
                if torch.equal(quantize(enhanced, image.bit_depth), quantize(published, image.bit_depth)):
                    enhanced, plan = published, None  # no code of the output changed: the published pixels, no plan
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


class EnhancerCache:
    """
    The engines of one model, one per `EngineSettings`, each built on first use (`get(settings)`) and kept
    (the `size` most recently used). Thread-safe. What a front end with several settings uses (the app's
    exact and fast engines, the ComfyUI nodes, spandrel's descriptor).
    """

    def __init__(self, model, size: int = CACHED_ENGINES):
        self.model = model
        self.size = size
        self._engines: OrderedDict[EngineSettings, Enhancer] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, settings: EngineSettings | None = None, **changes) -> Enhancer:
        """The engine for `settings` (with `changes`), built now if it is not kept."""
        settings = engine_settings(settings, **changes)
        with self._lock:
            engine = self._engines.pop(settings, None) or Enhancer(self.model, settings)
            self._engines[settings] = engine  # most recently used last
            while len(self._engines) > self.size:
                self._engines.popitem(last=False)
            return engine


def enhance(model, image, strength: float | None = None, output_type: str = "pil", **settings):
    """One-line convenience: `Enhancer(model, **settings).enhance(image, strength, output_type)`.
    To enhance many images, build one `Enhancer` and reuse it."""
    return Enhancer(model, **settings).enhance(image, strength, output_type)


__all__ = ["Enhancer", "EnhancerCache", "enhance"]
