"""Running a `CLIPLITModel` on one image: decode, estimate the illumination, divide, encode."""

from __future__ import annotations

import numpy as np
import torch

from .image_processing_cliplit import DecodedImage, decode_image, encode_array, encode_pil
from .modeling_cliplit import apply_illumination


@torch.inference_mode()
def estimate_illumination(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """
    `pixel_values`: (1, 3, H, W) float32 in [0, 1] on any device -> illumination (1, 1, H, W) float32
    on the same device, computed on the model's device.
    """
    parameter = next(model.parameters())
    illumination = model.estimate_illumination(pixel_values.to(parameter.device, parameter.dtype))
    return illumination.float().to(pixel_values.device)


def enhance_decoded(model, image: DecodedImage, strength: float = 1.0, **kwargs) -> tuple[DecodedImage, np.ndarray]:
    """
    Enhance a `DecodedImage`. Returns the enhanced image (same alpha, bit depth and grayscale-ness)
    and the illumination map as an (H, W) float32 array.
    """
    pixel_values = torch.from_numpy(image.pixels).permute(2, 0, 1).unsqueeze(0)
    illumination = estimate_illumination(model, pixel_values, **kwargs)
    enhanced = apply_illumination(pixel_values, illumination, strength)
    pixels = enhanced[0].permute(1, 2, 0).numpy()
    return DecodedImage(pixels, image.alpha, image.bit_depth, image.grayscale), illumination[0, 0].numpy()


def enhance_image(model, image, strength: float = 1.0, output_type: str = "pil", **kwargs):
    """
    Enhance a PIL image, numpy array (H, W[, C]) or tensor (C, H, W) in [0, 1].

    `output_type`: "pil" (default; 16-bit colour, which PIL cannot hold, comes back as a uint16 array),
    "np" (uint8 / uint16 array with the input's channels) or "pt" (float (3, H, W) tensor in [0, 1]).
    """
    enhanced, _ = enhance_decoded(model, decode_image(image), strength, **kwargs)
    if output_type == "pt":
        return torch.from_numpy(enhanced.pixels).permute(2, 0, 1)
    if output_type == "np" or (enhanced.bit_depth == 16 and not enhanced.grayscale):
        return encode_array(enhanced)
    if output_type != "pil":
        raise ValueError(f"output_type must be 'pil', 'np' or 'pt', got {output_type!r}")
    return encode_pil(enhanced)
