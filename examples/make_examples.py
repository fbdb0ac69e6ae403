"""Render the demo's example photos and the README's before/after picture.

The examples are our own backlit renderings of public-domain and CC0 photographs shipped with
scikit-image (only needed to regenerate them: `pip install scikit-image`):

| file                      | source photo (scikit-image)            | licence of the source                 |
|---------------------------|----------------------------------------|---------------------------------------|
| backlit_astronaut.jpg     | `astronaut`: Eileen Collins, NASA      | public domain (NASA)                  |
| backlit_cat.jpg           | `chelsea`: Stefan van der Walt         | CC0                                   |
| backlit_coffee.jpg        | `coffee`: Rachel Michetti              | CC0                                   |

A backlit rendering keeps the photo's own content and puts a bright light behind it: the scene is
underexposed, as a camera metering for the light leaves it, and the light's glow is screen-blended
over it from one corner, so that the side of the subject away from the light stays dark. The
renderings are released under CC0 like their sources.

    python examples/make_examples.py [--model clip-lit]   # also writes docs/images/before_after.jpg

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
EXPOSURE = 0.2  # the scene keeps this fraction of its light, as a camera metering for the light leaves it ...
SHADOW_GAMMA = 1.3  # ... with its shadows crushed a little more, as in an underexposed photo
GLOW_STRENGTH = 1.2  # the light behind the scene, screen-blended over it
GLOW_RADIUS = 0.28  # its fall-off length, as a fraction of the image height
GLOW_TINT = (1.0, 0.92, 0.78)  # warm low sun
HAZE = 0.02  # veiling glare over the whole frame


@dataclass(frozen=True)
class Scene:
    name: str
    source: str  # scikit-image data function
    light: tuple[float, float]  # where the light behind the subject is (fractions of the image)
    width: int  # output width in pixels (the height keeps the aspect ratio)


SCENES = (
    Scene("backlit_astronaut", "astronaut", (0.78, 0.05), 768),
    Scene("backlit_cat", "chelsea", (0.95, 0.0), 768),
    Scene("backlit_coffee", "coffee", (0.1, 0.0), 768),
)


def render_backlit(photo: np.ndarray, scene: Scene) -> np.ndarray:
    """(H, W, 3) float in [0, 1] -> the same scene against a bright light behind it (float in [0, 1])."""
    height, width = photo.shape[:2]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    lx, ly = scene.light
    distance = np.hypot((x / width - lx) * width / height, y / height - ly)
    glow = GLOW_STRENGTH * np.exp(-distance / GLOW_RADIUS)[..., None] * np.array(GLOW_TINT, np.float32)
    dark = EXPOSURE * photo**SHADOW_GAMMA
    return np.clip(1 - (1 - dark) * (1 - glow) + HAZE, 0, 1)


def main(argv=None) -> int:
    from skimage import data

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model for the before/after picture (default: cliplit's default)")
    args = parser.parse_args(argv)
    written = []
    for scene in SCENES:
        photo = getattr(data, scene.source)()
        image = Image.fromarray(photo).convert("RGB")
        image = image.resize((scene.width, round(scene.width * image.height / image.width)), Image.LANCZOS)
        backlit = render_backlit(np.asarray(image, dtype=np.float32) / 255, scene)
        path = OUTPUT_DIR / f"{scene.name}.jpg"
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
    BEFORE_AFTER.parent.mkdir(parents=True, exist_ok=True)
    pair.save(BEFORE_AFTER, quality=JPEG_QUALITY)
    print(f"wrote {BEFORE_AFTER}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
