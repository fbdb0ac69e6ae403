"""What the 16-bit RAW path gives a backlit photo's shadows, measured on a synthetic scene.

Usage (from the repository root):

    python bench/sixteen_bit.py --model ../shared/reference/clip-lit/enhancement_model.pth [--size 512x768]

One backlit scene in linear light (a sky at the sensor's white level over a subject in deep shadow:
0.2-3% of white, smooth shading and a fine texture) is rendered three ways:

- float: the scene through LibRaw's tone curve (BT.709 gamma, sRGB primaries), kept in float32;
- RAW: a 14-bit Bayer DNG of the scene, decoded by cliplit as by default (rawpy's
  postprocess(output_bps=16, use_camera_wb=True, no_auto_bright=True)), enhanced on the 16-bit path,
  written as a 16-bit PNG;
- JPEG: the 8-bit JPEG a camera makes of the float rendering (quality --jpeg-quality, 4:2:0 chroma),
  enhanced and written as an 8-bit PNG.

Each is enhanced with the same model and strength, and the two files are scored against the float
rendering's enhancement: PSNR over the shadows (the subject, where the scene is under 5% of white), and
the number of distinct output levels there (banding shows as few levels), leaving out 8 pixels at the
sky's edge and the image border (where demosaicing, not bit depth, decides). Prints one row per path.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
SHADOW_LIMIT = 0.05  # linear scene luminance under which a pixel is "shadow"
EDGE_MARGIN_PX = 8  # shadow pixels this close to the sky or the image border are left out (demosaicing's edges)
BT709_GAMMA, BT709_TOE_SLOPE, BT709_TOE = 1 / 2.222, 4.5, 0.018  # LibRaw's default tone curve (gamma 2.222, slope 4.5)
DEFAULT_SIZE = "512x768"
DEFAULT_JPEG_QUALITY = 90


def bt709_curve(linear: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] -> LibRaw's default (BT.709) encoding, float."""
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear < BT709_TOE, linear * BT709_TOE_SLOPE, 1.099 * linear ** BT709_GAMMA - 0.099)


def shadow_mask(scene: np.ndarray) -> np.ndarray:
    """(H, W) bool: the scene's shadows, at least `EDGE_MARGIN_PX` from the sky and from the image's border."""
    import cv2

    shadows = (scene.mean(axis=2) < SHADOW_LIMIT).astype(np.uint8)
    shadows = cv2.erode(shadows, np.ones((2 * EDGE_MARGIN_PX + 1,) * 2, np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return shadows.astype(bool)


def shadow_psnr(output: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    """PSNR (dB) of (H, W, 3) [0, 1] `output` against `reference` over the (H, W) `mask`."""
    error = float(np.mean((output[mask] - reference[mask]) ** 2))
    return math.inf if error == 0 else 10 * math.log10(1.0 / error)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a model as `cliplit enhance --model` takes it")
    parser.add_argument("--size", default=DEFAULT_SIZE, help=f"scene size HxW (default {DEFAULT_SIZE})")
    parser.add_argument("--strength", type=float, default=None, help="enhancement strength (default: the model's)")
    parser.add_argument("--jpeg-quality", type=int, default=DEFAULT_JPEG_QUALITY, help=f"the camera JPEG's quality (default {DEFAULT_JPEG_QUALITY})")
    args = parser.parse_args(argv)
    height, width = (int(side) for side in args.size.lower().split("x"))

    sys.path.insert(0, str(REPO_ROOT / "tests"))  # the scene and DNG writer the tests use
    from photo_files import linear_backlit_scene, write_dng
    from PIL import Image

    from cliplit.engine.enhancer import Enhancer
    from cliplit.imaging.codec import decode_array
    from cliplit.imaging.files import read_image, write_image
    from cliplit.model.loading import load_network

    scene = linear_backlit_scene(height, width)
    mask = shadow_mask(scene)
    rendered = bt709_curve(scene).astype(np.float32)
    enhancer = Enhancer(load_network(args.model))
    reference = enhancer.enhance_decoded(decode_array(rendered), args.strength)[0].pixels
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        dng = write_dng(folder / "scene.dng", scene)
        jpeg = folder / "scene.jpg"
        Image.fromarray(np.round(rendered * 255).astype(np.uint8)).save(jpeg, quality=args.jpeg_quality)
        for label, source in (("RAW (DNG, 16-bit path)", dng), (f"JPEG q{args.jpeg_quality} (8-bit)", jpeg)):
            decoded = read_image(source)
            output = folder / f"{source.stem}-{source.suffix[1:]}.png"
            write_image(output, enhancer.enhance_decoded(decoded, args.strength)[0])
            pixels = read_image(output)
            levels = len(np.unique(np.round(pixels.pixels[mask][:, 1] * 65535)))
            rows.append((label, decoded.bit_depth, pixels.bit_depth, shadow_psnr(pixels.pixels, reference, mask), levels,
                         os.path.getsize(source)))
    print(f"scene {height}x{width}, shadows {mask.mean():.0%} of the pixels (under {SHADOW_LIMIT:.0%} of white), "
          f"strength {enhancer.strength if args.strength is None else args.strength:g}")
    print(f"{'input':<26} {'decoded':>8} {'output':>7} {'shadow PSNR':>12} {'shadow levels (G)':>18}")
    for label, decoded_bits, output_bits, psnr, levels, _ in rows:
        print(f"{label:<26} {decoded_bits:>6}-b {output_bits:>5}-b {psnr:>9.2f} dB {levels:>18}")
    print(f"16-bit benefit: {rows[0][3] - rows[1][3]:+.2f} dB in the shadows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
