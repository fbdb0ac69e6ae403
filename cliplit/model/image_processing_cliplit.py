"""Image processor for CLIP-LIT (transformers `BaseImageProcessor`): images in any common mode to
`pixel_values` in [0, 1], and back. The decoding rules live in `cliplit.imaging.codec`."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

from ..imaging.codec import DecodedImage, decode_image, encode_pil


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


__all__ = ["CLIPLITImageProcessor"]
