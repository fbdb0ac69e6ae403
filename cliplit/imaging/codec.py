"""Images in memory <-> `DecodedImage`: RGB float pixels in [0, 1] plus what is needed to give the user
back what they gave (alpha, bit depth, grayscale).

CLIP-LIT needs no resizing or normalization: the network takes RGB in [0, 1] at full resolution.
What matters is reading every mode the way a photographer expects:

- EXIF orientation is applied (to the decoded array: Pillow's `exif_transpose` rewrites the EXIF and fails
  on a malformed tag);
- L / I;16 (grayscale) are enhanced as gray RGB and come back grayscale;
- LA / RGBA / PA / P-with-transparency, and L / I;16 / RGB made transparent by a PNG colour key (tRNS):
  the alpha channel is kept aside and put back unchanged;
- P, CMYK, YCbCr, LAB, HSV, 1: converted to RGB;
- 16-bit data (I;16, 16-bit RGB PNG/TIFF read through `cliplit.imaging.files`, uint16 arrays) keeps
  its precision: it is scaled by 1/65535 and written back as 16-bit.

`quantize` is the one 8/16-bit quantizer of cliplit (inference outputs and training results alike).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .jpeg import JpegCompression, jpeg_compression
from .metadata import ImageMetadata, exif_for_output, orientation_of, read_pil_metadata, xmp_for_output

EIGHT_BIT_MAX = 255
SIXTEEN_BIT_MAX = 65535
GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")
SIXTEEN_BIT_GRAY_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")
PREMULTIPLIED_MODES = {"La": "LA", "RGBa": "RGBA", "PA": "RGBA"}
COLOR_KEY_MODES = {"1": "LA", "L": "LA", "RGB": "RGBA"}  # 8-bit modes a PNG colour key (tRNS) makes transparent


@dataclass
class DecodedImage:
    """
    An image ready for the network, with what is needed to write it back as the user expects.

    Attributes:
        pixels: (H, W, 3) float32 RGB in [0, 1].
        alpha: (H, W) float32 in [0, 1], or None when the image has no alpha channel.
        bit_depth: 8 or 16: the precision of the source, used for the output.
        grayscale: True when the source was single-channel (the output is written single-channel).
        note: something the user should know about the source (e.g. only the first of its frames is
            used), or None.
        metadata: the source's EXIF, XMP, IPTC and ICC profile (`cliplit.imaging.metadata`), carried to
            the outputs; None for pixels that come with none.
        jpeg: the quantization of the JPEG file it was decoded from (for `--denoise`), or None.
        denoised: on an enhanced image, what `--denoise` did to it (a `cliplit.engine.denoise.DenoisePlan`:
            the level, the JPEG compression undone), or None when it changed nothing.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    bit_depth: int = 8
    grayscale: bool = False
    note: str | None = None
    metadata: ImageMetadata | None = None
    jpeg: JpegCompression | None = None
    denoised: object | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as PIL reports it."""
        return self.pixels.shape[1], self.pixels.shape[0]


def max_value(bit_depth: int) -> int:
    """The largest code of an integer image of `bit_depth` (8 or 16) bits."""
    return SIXTEEN_BIT_MAX if bit_depth == 16 else EIGHT_BIT_MAX


def quantize(values, bit_depth: int = 8):
    """
    [0, 1] floats (numpy array or torch tensor) to uint8 / uint16 codes, rounding as
    floor(x * max + 0.5) like torchvision's `save_image` (and the authors' saved outputs).
    """
    maximum = max_value(bit_depth)
    if isinstance(values, np.ndarray):  # one float temporary, the rest in place (large photos)
        codes = np.clip(values, 0.0, 1.0, dtype=np.float32)
        codes *= maximum
        codes += 0.5
        np.floor(codes, out=codes)
        return codes.astype(np.uint16 if bit_depth == 16 else np.uint8)
    import torch

    codes = torch.floor(values.clamp(0, 1) * maximum + 0.5)
    return codes.to(torch.int32 if bit_depth == 16 else torch.uint8)


def _scale_integer_array(array: np.ndarray) -> tuple[np.ndarray, int]:
    """
    An image array to float32 in [0, 1] and its bit depth (8 or 16), with one float32 copy (the
    scaling is done in place): bool and uint8 are 8-bit, uint16 is 16-bit, floats must be finite and
    are clipped to [0, 1]. Other integer types are ambiguous (8-bit values in a uint32? 16-bit?) and
    refused; PIL's 32-bit "I" images are converted to uint16 by `decode_pil` when their values fit.
    """
    if array.dtype in (np.uint8, np.bool_, np.uint16):
        values = array.astype(np.float32)
        divisor = SIXTEEN_BIT_MAX if array.dtype == np.uint16 else 1 if array.dtype == np.bool_ else EIGHT_BIT_MAX
        np.divide(values, divisor, out=values)  # a true division (as the authors' uint8 / 255), in place
        return values, 16 if array.dtype == np.uint16 else 8
    if np.issubdtype(array.dtype, np.floating):
        values = array.astype(np.float32)
        if not np.isfinite(values).all():
            raise ValueError("the image holds NaN or infinite values")
        return np.clip(values, 0.0, 1.0, out=values), 8
    raise ValueError(f"unsupported pixel type {array.dtype}: give uint8, uint16, or floats in [0, 1]")


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


def orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """An (H, W[, C]) array turned upright for an EXIF orientation (1-8; other values: unchanged), as PIL's
    `exif_transpose` turns an image."""
    transforms = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    transform = transforms.get(orientation)
    return np.ascontiguousarray(transform(array)) if transform else array


def decode_pil(image: Image.Image) -> DecodedImage:
    """
    A PIL image in any common mode to a `DecodedImage`: EXIF orientation applied, metadata kept (what is
    malformed left out, `ImageMetadata.left_out`), and the JPEG file's quantization noted (for `--denoise`;
    not for a turned image, whose blocks turned too).
    """
    orientation = orientation_of(image)
    jpeg = jpeg_compression(image) if orientation == 1 else None
    decoded = decode_array(orient(_pil_array(image), orientation))
    decoded.metadata = read_pil_metadata(image, grayscale=decoded.grayscale)
    decoded.jpeg = jpeg
    return decoded


def _color_key_alpha(values: np.ndarray, key) -> np.ndarray:
    """(H, W[, C]) integer values and a PNG colour key (an int for gray, a tuple for RGB) -> (H, W[, C + 1]) values with
    an alpha channel: 0 where a pixel is the key, the largest code elsewhere."""
    color = values if values.ndim == 3 else values[:, :, None]
    opaque = np.iinfo(values.dtype).max
    transparent = (color == np.asarray(key, dtype=np.int64).reshape(-1)[: color.shape[2]]).all(axis=2)
    return np.dstack([color, np.where(transparent, 0, opaque).astype(values.dtype)])


def _pil_array(image: Image.Image) -> np.ndarray:
    """A PIL image's pixels as (H, W) gray, (H, W, 2) gray + alpha, (H, W, 3) RGB or (H, W, 4) RGBA values:
    uint8, uint16 (16-bit gray) or float32 (mode F)."""
    mode = image.mode
    key = image.info.get("transparency")
    if mode in SIXTEEN_BIT_GRAY_MODES:
        values = np.asarray(image)
        if values.size and (values.min() < 0 or values.max() > SIXTEEN_BIT_MAX):
            raise ValueError(f"{mode} pixel values outside 0-{SIXTEEN_BIT_MAX} are not supported")
        values = values.astype(np.uint16)
        return _color_key_alpha(values, key) if isinstance(key, int) else values
    if mode == "F":
        return np.asarray(image, dtype=np.float32)
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    elif mode in COLOR_KEY_MODES and key is not None:
        image = image.convert(COLOR_KEY_MODES[mode])  # Pillow applies the colour key
    elif mode in PREMULTIPLIED_MODES:
        image = image.convert(PREMULTIPLIED_MODES[mode])
    if image.mode in ("L", "LA", "RGB", "RGBA"):
        return np.asarray(image)
    return np.asarray(image.convert("L" if image.mode in GRAY_MODES else "RGB"))


def _is_tensor(image) -> bool:
    torch = sys.modules.get("torch")  # an image can only be a tensor if torch is already loaded
    return torch is not None and isinstance(image, torch.Tensor)


def decode_tensor(tensor) -> DecodedImage:
    """A (C, H, W) float tensor in [0, 1] (C = 1, 2, 3 or 4) to a `DecodedImage`."""
    if tensor.ndim != 3 or tensor.shape[0] not in (1, 2, 3, 4):  # checked here: the message shows the shape given
        raise ValueError(f"expected a (C, H, W) tensor with C = 1, 2, 3 or 4, got shape {tuple(tensor.shape)}")
    tensor = tensor.detach().to("cpu")
    if tensor.is_floating_point() and tensor.element_size() < 4:  # half precision: numpy has no bfloat16
        tensor = tensor.float()
    array = tensor.permute(1, 2, 0).numpy()
    return decode_array(array)


def decode_image(image) -> DecodedImage:
    """PIL image, numpy array (H, W[, C]) or tensor (C, H, W) to a `DecodedImage`."""
    if isinstance(image, DecodedImage):
        return image
    if isinstance(image, Image.Image):
        return decode_pil(image)
    if _is_tensor(image):
        return decode_tensor(image)
    if isinstance(image, np.ndarray):
        return decode_array(image)
    raise TypeError(f"expected a PIL image, numpy array or torch tensor, got {type(image).__name__}")


def encode_array(decoded: DecodedImage) -> np.ndarray:
    """A `DecodedImage` to an integer array (H, W[, C]) with the source's channels and bit depth."""
    color = decoded.pixels[:, :, :1] if decoded.grayscale else decoded.pixels
    if decoded.alpha is not None:
        color = np.concatenate([color, decoded.alpha[:, :, None]], axis=2)
    array = quantize(color, decoded.bit_depth)
    return array[:, :, 0] if array.shape[2] == 1 else array


def encode_pil(decoded: DecodedImage) -> Image.Image:
    """
    A `DecodedImage` to a PIL image with the source's mode family (L, LA, RGB, RGBA, or I;16 for 16-bit gray),
    its `info` holding the source's ICC profile, EXIF (upright, this size) and XMP, as PIL's savers take them.
    PIL cannot hold 16-bit colour: such images are returned at 8 bits; use `encode_array` or
    `cliplit.imaging.files.write_image` to keep 16 bits.
    """
    if decoded.bit_depth == 16 and decoded.grayscale and decoded.alpha is None:
        image = Image.fromarray(encode_array(decoded))  # uint16 (H, W) -> "I;16"
    else:
        image = Image.fromarray(encode_array(DecodedImage(decoded.pixels, decoded.alpha, 8, decoded.grayscale)))
    metadata = decoded.metadata
    if metadata is not None:
        entries = {"icc_profile": metadata.icc_profile, "exif": exif_for_output(metadata.exif, image.size),
                   "xmp": xmp_for_output(metadata.xmp)}
        image.info.update({key: value for key, value in entries.items() if value})
    return image


__all__ = [
    "DecodedImage",
    "EIGHT_BIT_MAX",
    "SIXTEEN_BIT_MAX",
    "decode_array",
    "decode_image",
    "decode_pil",
    "encode_array",
    "encode_pil",
    "max_value",
    "orient",
    "quantize",
]
