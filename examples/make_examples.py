"""Render the demo's example photos and the README's before/after picture.

The examples are our own backlit renderings of public-domain and CC0 photographs shipped with
scikit-image (only needed to regenerate them: `pip install scikit-image`):

| file                      | source photo (scikit-image)            | licence of the source                 |
|---------------------------|----------------------------------------|---------------------------------------|
| backlit_astronaut.jpg     | `astronaut`: Eileen Collins, NASA      | public domain (NASA)                  |
| backlit_cat.jpg           | `chelsea`: Stefan van der Walt         | CC0                                   |
| backlit_coffee.jpg        | `coffee`: Rachel Michetti              | CC0                                   |

A backlit rendering is made physically, in linear light, as a camera would record the scene with a
bright light behind the subject:

1. the photo is decoded from sRGB to linear light, and its subject is separated from its background
   with OpenCV's GrabCut (a rectangle per photo, `Scene.subject`; holes filled), as a soft matte;
2. the background is lit by the light behind the subject (low sun, window): its radiance is raised
   `LIGHT_STOPS` stops, with a glow around the light's position; the subject keeps only the soft fill
   light, plus a little of the background's light wrapping around its edges and the veiling glare
   that the lens scatters over the whole frame;
3. the exposure is metered for the bright background (its `METERED_PERCENTILE`th percentile at the
   sensor's full scale), so the subject falls about `LIGHT_STOPS` stops under;
4. sensor noise (signal-dependent shot noise plus read noise, an ISO-800 phone's levels) is added
   and the sensor clips at 1;
5. the result is encoded to sRGB, quantized to 8 bits and saved as a JPEG, as a camera saves it.

The renderings are released under CC0 like their sources.

    python examples/make_examples.py [--model clip-lit] [--output-dir examples] [--before-after docs/images/before_after.jpg]

The before/after picture puts the first example beside its enhancement by `--model` (the output of
the network, computed here).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

OUTPUT_DIR = Path(__file__).resolve().parent
BEFORE_AFTER = OUTPUT_DIR.parent / "docs" / "images" / "before_after.jpg"
JPEG_QUALITY = 90
LIGHT_STOPS = 4.0  # the background is lit this many stops above the subject's fill light
GLOW_RADIUS = 0.35  # the light's glow fall-off, as a fraction of the image height
GLOW_STRENGTH = 3.0  # the glow's peak, in units of the lit background's white
LIGHT_TINT = (1.0, 0.93, 0.8)  # warm low sun
MATTE_SOFTNESS = 0.004  # the matte's blur (Gaussian sigma), as a fraction of the image height
LIGHT_WRAP = 0.12  # fraction of the nearby background light that wraps around the subject's edges
WRAP_RADIUS = 0.02  # how far it reaches into the subject, as a fraction of the image height
VEILING_GLARE = 0.01  # fraction of the background's mean radiance scattered over the frame by the lens
METERED_PERCENTILE = 90  # the exposure puts this percentile of the background at full scale
SHOT_NOISE = 4e-4  # variance per unit of signal (sensor full scale = 1): an ISO-800 phone sensor
READ_NOISE = 1e-3  # standard deviation of the signal-independent noise
GRABCUT_ITERATIONS = 8
NOISE_SEED = 0


@dataclass(frozen=True)
class Scene:
    name: str
    source: str  # scikit-image data function
    subject: tuple[int, int, int, int]  # (x, y, width, height) around the subject in the source photo, for GrabCut
    light: tuple[float, float]  # where the light behind the subject is (fractions of the image)
    width: int  # output width in pixels (the height keeps the aspect ratio)


SCENES = (
    Scene("backlit_astronaut", "astronaut", (20, 20, 400, 492), (0.8, 0.05), 768),
    Scene("backlit_cat", "chelsea", (1, 1, 330, 298), (0.95, 0.05), 768),
    Scene("backlit_coffee", "coffee", (90, 10, 330, 330), (0.1, 0.0), 768),
)


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear light (IEC 61966-2-1)."""
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(values: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] -> sRGB-encoded values (IEC 61966-2-1)."""
    return np.where(values <= 0.0031308, values * 12.92, 1.055 * np.power(values, 1 / 2.4) - 0.055)


def subject_matte(photo: np.ndarray, rectangle: tuple[int, int, int, int]) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) float matte, 1 on the subject (GrabCut inside `rectangle`), softened."""
    import cv2
    from scipy.ndimage import binary_fill_holes

    labels = np.zeros(photo.shape[:2], np.uint8)
    models = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.grabCut(np.ascontiguousarray(photo[:, :, ::-1]), labels, rectangle, *models, GRABCUT_ITERATIONS,
                cv2.GC_INIT_WITH_RECT)
    matte = binary_fill_holes(np.isin(labels, (cv2.GC_FGD, cv2.GC_PR_FGD))).astype(np.float32)  # no lit holes
    return cv2.GaussianBlur(matte, (0, 0), MATTE_SOFTNESS * photo.shape[0])


def render_backlit(photo: np.ndarray, matte: np.ndarray, scene: Scene, seed: int = NOISE_SEED) -> np.ndarray:
    """
    `photo`: (H, W, 3) sRGB float in [0, 1]; `matte`: (H, W) in [0, 1], 1 on the subject -> the same
    scene photographed against a bright light behind the subject, (H, W, 3) sRGB float in [0, 1]
    (steps 2-5 of the module docstring, before quantization).
    """
    import cv2

    height, width = photo.shape[:2]
    reflectance = srgb_to_linear(photo.astype(np.float64))
    y, x = np.mgrid[0:height, 0:width]
    lx, ly = scene.light
    distance = np.hypot((x / width - lx) * width / height, y / height - ly)
    light = 2.0**LIGHT_STOPS * np.array(LIGHT_TINT)
    glow = GLOW_STRENGTH * np.exp(-((distance / GLOW_RADIUS) ** 2))[..., None]
    background = (reflectance + glow) * light
    subject_weight = matte[..., None]
    lit_background = background * (1 - subject_weight)
    wrap = cv2.GaussianBlur(lit_background.astype(np.float32), (0, 0), WRAP_RADIUS * height)
    subject = reflectance + LIGHT_WRAP * wrap
    radiance = subject_weight * subject + lit_background
    radiance += VEILING_GLARE * background[matte < 0.5].mean(axis=0)
    exposure = 1.0 / np.percentile(background[matte < 0.5].mean(axis=-1), METERED_PERCENTILE)
    exposed = radiance * exposure
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(exposed.shape) * np.sqrt(SHOT_NOISE * np.clip(exposed, 0, 1) + READ_NOISE**2)
    return linear_to_srgb(np.clip(exposed + noise, 0.0, 1.0))


def main(argv=None) -> int:
    from skimage import data

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model for the before/after picture (default: cliplit's default)")
    parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR, help=f"where the examples go (default: {OUTPUT_DIR.name}/)")
    parser.add_argument("--before-after", type=Path, default=BEFORE_AFTER, help="the before/after picture (default: the README's)")
    args = parser.parse_args(argv)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for scene in SCENES:
        photo = np.asarray(Image.fromarray(getattr(data, scene.source)()).convert("RGB"))
        matte = subject_matte(photo, scene.subject)
        size = (scene.width, round(scene.width * photo.shape[0] / photo.shape[1]))
        image = Image.fromarray(photo).resize(size, Image.LANCZOS)
        matte = np.asarray(Image.fromarray(matte).resize(size, Image.BILINEAR))
        backlit = render_backlit(np.asarray(image, dtype=np.float32) / 255, matte, scene)
        path = args.output_dir / f"{scene.name}.jpg"
        Image.fromarray((backlit * 255 + 0.5).astype(np.uint8)).save(path, quality=JPEG_QUALITY)
        written.append(path)
        print(f"wrote {path}")

    import cliplit

    before = Image.open(written[0]).convert("RGB")
    after = cliplit.enhance(cliplit.load_network(args.model), before)
    pair = Image.new("RGB", (before.width * 2, before.height))
    pair.paste(before, (0, 0))
    pair.paste(after, (before.width, 0))
    pair = pair.resize((pair.width * 2 // 3, pair.height * 2 // 3), Image.LANCZOS)
    args.before_after.parent.mkdir(parents=True, exist_ok=True)
    pair.save(args.before_after, quality=JPEG_QUALITY)
    print(f"wrote {args.before_after}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
