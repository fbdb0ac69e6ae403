"""Image processor for CLIP-LIT: images in any common mode to `pixel_values` in [0, 1], and back.

CLIP-LIT needs no resizing or normalization: the network takes RGB in [0, 1] at full resolution.
What matters is reading every mode the way a photographer expects:

- EXIF orientation is applied;
- L / I;16 (grayscale) are enhanced as gray RGB and come back grayscale;
- LA / RGBA / PA / P-with-transparency: the alpha channel is kept aside and put back unchanged;
- P, CMYK, YCbCr, LAB, HSV, 1: converted to RGB;
- 16-bit data (I;16, 16-bit RGB PNG/TIFF read through `cliplit.image_io`, uint16 arrays) keeps its
  precision: it is scaled by 1/65535 and written back as 16-bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

EIGHT_BIT_MAX = 255
SIXTEEN_BIT_MAX = 65535
ALPHA_MODES = ("LA", "La", "RGBA", "RGBa", "PA")
GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")
SIXTEEN_BIT_GRAY_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")


@dataclass
class DecodedImage:
    """
    An image ready for the network, with what is needed to write it back as the user expects.

    Attributes:
        pixels: (H, W, 3) float32 RGB in [0, 1].
        alpha: (H, W) float32 in [0, 1], or None when the image has no alpha channel.
        bit_depth: 8 or 16: the precision of the source, used for the output.
        grayscale: True when the source was single-channel (the output is written single-channel).
    """

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    bit_depth: int = 8
    grayscale: bool = False

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as PIL reports it."""
        return self.pixels.shape[1], self.pixels.shape[0]


def _scale_integer_array(array: np.ndarray) -> tuple[np.ndarray, int]:
    """An integer or float array to float32 in [0, 1] and its bit depth (8 or 16)."""
    if array.dtype == np.uint8 or array.dtype == np.bool_:
        return array.astype(np.float32) / (1 if array.dtype == np.bool_ else EIGHT_BIT_MAX), 8
    if array.dtype == np.uint16 or np.issubdtype(array.dtype, np.integer):
        return np.clip(array.astype(np.float32) / SIXTEEN_BIT_MAX, 0.0, 1.0), 16
    if np.issubdtype(array.dtype, np.floating):
        return np.clip(array.astype(np.float32), 0.0, 1.0), 8
    raise ValueError(f"unsupported array dtype {array.dtype}")


def decode_array(array: np.ndarray) -> DecodedImage:
    """
    An (H, W), (H, W, 1|2|3|4) array to a `DecodedImage`. uint8 is 8-bit, uint16 is 16-bit, floats
    are taken as [0, 1]. Two channels are gray + alpha; four are RGB + alpha.
    """
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected an (H, W) or (H, W, 1-4) array, got shape {array.shape}")
    values, bit_depth = _scale_integer_array(array)
    channels = array.shape[2]
    grayscale = channels in (1, 2)
    color = values[:, :, :1].repeat(3, axis=2) if grayscale else values[:, :, :3]
    alpha = values[:, :, -1] if channels in (2, 4) else None
    return DecodedImage(np.ascontiguousarray(color), alpha, bit_depth, grayscale)


def decode_pil(image: Image.Image) -> DecodedImage:
    """A PIL image in any common mode to a `DecodedImage` (EXIF orientation applied)."""
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode in SIXTEEN_BIT_GRAY_MODES:
        return decode_array(np.asarray(image).astype(np.uint16 if mode != "I" else np.int64))
    if mode == "F":
        return decode_array(np.asarray(image, dtype=np.float32))
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    elif mode in ("La", "RGBa", "PA"):
        image = image.convert("LA" if mode == "La" else "RGBA")
    if image.mode in ("L", "LA", "RGB", "RGBA"):
        return decode_array(np.asarray(image))
    grayscale = image.mode in GRAY_MODES
    return decode_array(np.asarray(image.convert("L" if grayscale else "RGB")))


def decode_tensor(tensor: torch.Tensor) -> DecodedImage:
    """A (C, H, W) float tensor in [0, 1] (C = 1, 2, 3 or 4) to a `DecodedImage`."""
    if tensor.ndim != 3:
        raise ValueError(f"expected a (C, H, W) tensor, got shape {tuple(tensor.shape)}")
    array = tensor.detach().to("cpu").permute(1, 2, 0).numpy()
    return decode_array(array if not array.dtype == np.float16 else array.astype(np.float32))


def decode_image(image) -> DecodedImage:
    """PIL image, numpy array (H, W[, C]) or tensor (C, H, W) to a `DecodedImage`."""
    if isinstance(image, DecodedImage):
        return image
    if isinstance(image, Image.Image):
        return decode_pil(image)
    if isinstance(image, torch.Tensor):
        return decode_tensor(image)
    if isinstance(image, np.ndarray):
        return decode_array(image)
    raise TypeError(f"expected a PIL image, numpy array or torch tensor, got {type(image).__name__}")


def quantize(values: np.ndarray, bit_depth: int) -> np.ndarray:
    """[0, 1] floats to uint8 / uint16, rounding as floor(x * max + 0.5) like torchvision's save_image."""
    maximum = SIXTEEN_BIT_MAX if bit_depth == 16 else EIGHT_BIT_MAX
    dtype = np.uint16 if bit_depth == 16 else np.uint8
    return np.floor(np.clip(values, 0.0, 1.0) * maximum + 0.5).astype(dtype)


def encode_array(decoded: DecodedImage) -> np.ndarray:
    """A `DecodedImage` to an integer array (H, W[, C]) with the source's channels and bit depth."""
    color = decoded.pixels[:, :, :1] if decoded.grayscale else decoded.pixels
    channels = [color] if decoded.alpha is None else [color, decoded.alpha[:, :, None]]
    array = quantize(np.concatenate(channels, axis=2), decoded.bit_depth)
    return array[:, :, 0] if array.shape[2] == 1 else array


def encode_pil(decoded: DecodedImage) -> Image.Image:
    """
    A `DecodedImage` to a PIL image with the source's mode family (L, LA, RGB, RGBA, or I;16 for 16-bit gray).
    PIL cannot hold 16-bit colour: such images are returned at 8 bits; use `encode_array` or
    `cliplit.image_io.write_image` to keep 16 bits.
    """
    if decoded.bit_depth == 16 and decoded.grayscale and decoded.alpha is None:
        return Image.fromarray(encode_array(decoded))  # uint16 (H, W) -> "I;16"
    return Image.fromarray(encode_array(DecodedImage(decoded.pixels, decoded.alpha, 8, decoded.grayscale)))


class CLIPLITImageProcessor(BaseImageProcessor):
    r"""
    Turns images into `pixel_values` for [`CLIPLITModel`] and its outputs back into images.

    No resizing and no normalization: CLIP-LIT works on RGB in [0, 1] at full resolution.
    Accepts PIL images in any common mode, numpy arrays (H, W[, C]) of uint8 / uint16 / float, and
    tensors (C, H, W) in [0, 1].
    """

    model_input_names = ["pixel_values"]

    def __init__(self, **kwargs):
        kwargs.pop("image_processor_type", None)
        super().__init__(**kwargs)

    def decode(self, images) -> list[DecodedImage]:
        """One image or a list of images to `DecodedImage`s (RGB float, alpha aside, bit depth)."""
        if not isinstance(images, (list, tuple)):
            images = [images]
        return [decode_image(image) for image in images]

    def preprocess(self, images, return_tensors: str | None = "pt", **kwargs) -> BatchFeature:
        """
        Returns a `BatchFeature` whose `pixel_values` is a float32 tensor (batch, 3, H, W) in [0, 1]
        (with `return_tensors="pt"`, which needs images of one size) or else a list of (3, H, W) arrays.
        """
        decoded = self.decode(images)
        arrays = [image.pixels.transpose(2, 0, 1) for image in decoded]
        if return_tensors == "pt":
            if len({a.shape for a in arrays}) > 1:
                raise ValueError("images of different sizes cannot be batched; pass them one at a time")
            return BatchFeature({"pixel_values": torch.from_numpy(np.stack(arrays))})
        return BatchFeature({"pixel_values": arrays})

    def __call__(self, images, return_tensors: str | None = "pt", **kwargs) -> BatchFeature:
        return self.preprocess(images, return_tensors=return_tensors, **kwargs)

    def postprocess(self, reconstruction: torch.Tensor, sources: list[DecodedImage] | None = None) -> list[Image.Image]:
        """
        `reconstruction`: (batch, 3, H, W) in [0, 1] -> PIL images. With `sources` (from `decode`),
        each output gets its source's alpha, grayscale-ness and bit depth back.
        """
        images = []
        for index, pixels in enumerate(reconstruction.detach().float().cpu().permute(0, 2, 3, 1).numpy()):
            source = sources[index] if sources is not None else DecodedImage(pixels)
            images.append(encode_pil(DecodedImage(pixels, source.alpha, source.bit_depth, source.grayscale)))
        return images


__all__ = ["CLIPLITImageProcessor", "DecodedImage", "decode_image", "encode_array", "encode_pil"]
