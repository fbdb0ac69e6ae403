"""Render the demo's example photos: procedural backlit scenes, ours to redistribute (no source photos).

Each scene puts a bright sky or window behind a dark subject whose details are only a few percent
above black, which is what CLIP-LIT is for. Run `python examples/make_examples.py` to regenerate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

WIDTH, HEIGHT = 768, 512
JPEG_QUALITY = 88
SEED = 2023
OUTPUT_DIR = Path(__file__).resolve().parent


def _grid() -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    return x / WIDTH, y / HEIGHT


def _noise(rng: np.random.Generator, scale: float) -> np.ndarray:
    """Smooth value noise in [0, 1]: a coarse random grid upsampled bilinearly."""
    cells_y, cells_x = max(2, int(HEIGHT / scale)), max(2, int(WIDTH / scale))
    coarse = Image.fromarray((rng.random((cells_y, cells_x)) * 255).astype(np.uint8))
    return np.asarray(coarse.resize((WIDTH, HEIGHT), Image.BILINEAR), dtype=np.float32) / 255


def _sky(x: np.ndarray, y: np.ndarray, sun: tuple[float, float], top, horizon) -> np.ndarray:
    """A vertical gradient from `top` to `horizon` colour with a glowing sun at `sun` (x, y)."""
    t = np.clip(y / 0.75, 0, 1)[..., None]
    sky = (1 - t) * np.array(top, np.float32) + t * np.array(horizon, np.float32)
    distance = np.hypot((x - sun[0]) * WIDTH / HEIGHT, y - sun[1])
    glow = np.exp(-distance / 0.12)[..., None] * np.array([1.0, 0.85, 0.6], np.float32)
    disc = (distance < 0.045)[..., None].astype(np.float32)
    return np.clip(sky + glow + disc, 0, 1)


def _dim_texture(rng: np.random.Generator, base, level: float) -> np.ndarray:
    """A dark surface: `base` colour at brightness `level` with visible (once enhanced) texture."""
    detail = 0.55 + 0.45 * _noise(rng, 6) * (0.6 + 0.4 * _noise(rng, 40))
    return level * detail[..., None] * np.array(base, np.float32)


def sunset_silhouette(rng: np.random.Generator) -> np.ndarray:
    """A person and a tree on a meadow against the setting sun."""
    x, y = _grid()
    image = _sky(x, y, (0.62, 0.58), (0.35, 0.45, 0.75), (1.0, 0.7, 0.35))
    ground = y > 0.68 + 0.03 * np.sin(x * 9) + 0.02 * _noise(rng, 30)
    grass = _dim_texture(rng, (0.35, 0.55, 0.2), 0.10)
    stripes = 0.85 + 0.15 * np.sin(x * 400 + _noise(rng, 8) * 20)[..., None]
    image = np.where(ground[..., None], grass * stripes, image)
    head = np.hypot((x - 0.3) * WIDTH / HEIGHT, y - 0.34) < 0.055
    body = (np.abs(x - 0.3) < 0.045 + 0.25 * np.clip(y - 0.4, 0, 1)) & (y > 0.39) & (y < 0.75)
    coat = _dim_texture(rng, (0.8, 0.25, 0.2), 0.08)
    skin = _dim_texture(rng, (0.9, 0.65, 0.5), 0.09)
    image = np.where(body[..., None], coat, image)
    image = np.where(head[..., None], skin, image)
    trunk = (np.abs(x - 0.85) < 0.018) & (y > 0.3) & (y < 0.72)
    crown = np.hypot((x - 0.85) * WIDTH / HEIGHT, (y - 0.25) * 1.3) < 0.16 + 0.03 * _noise(rng, 12)
    image = np.where(trunk[..., None], _dim_texture(rng, (0.5, 0.35, 0.2), 0.07), image)
    return np.where(crown[..., None], _dim_texture(rng, (0.25, 0.5, 0.2), 0.09), image)


def window_interior(rng: np.random.Generator) -> np.ndarray:
    """A room with a bright window: furniture and a plant in front of daylight."""
    x, y = _grid()
    wall = _dim_texture(rng, (0.85, 0.75, 0.6), 0.12)
    image = wall * (0.85 + 0.15 * np.sin(x * 120)[..., None] ** 2)
    window = (x > 0.38) & (x < 0.86) & (y > 0.1) & (y < 0.7)
    outside = _sky(x, y, (0.7, 0.2), (0.7, 0.85, 1.0), (0.95, 0.97, 1.0))
    frame = window & ((np.abs(x - 0.62) < 0.008) | (np.abs(y - 0.4) < 0.01))
    image = np.where(window[..., None], outside, image)
    image = np.where(frame[..., None], _dim_texture(rng, (0.9, 0.9, 0.9), 0.15), image)
    floor = y > 0.78
    planks = 0.75 + 0.25 * (np.floor(x * 24) % 2)[..., None]
    image = np.where(floor[..., None], _dim_texture(rng, (0.7, 0.45, 0.25), 0.10) * planks, image)
    sofa = (x > 0.3) & (x < 0.92) & (y > 0.58) & (y < 0.86)
    cushions = 0.8 + 0.2 * (np.floor((x - 0.3) * 8) % 2)[..., None]
    image = np.where(sofa[..., None], _dim_texture(rng, (0.2, 0.35, 0.75), 0.09) * cushions, image)
    pot = (np.abs(x - 0.18) < 0.05) & (y > 0.7) & (y < 0.85)
    leaves = np.hypot((x - 0.18) * WIDTH / HEIGHT, y - 0.52) < 0.14 + 0.05 * _noise(rng, 10)
    image = np.where(leaves[..., None], _dim_texture(rng, (0.2, 0.6, 0.25), 0.10), image)
    return np.where(pot[..., None], _dim_texture(rng, (0.75, 0.35, 0.2), 0.10), image)


def city_skyline(rng: np.random.Generator) -> np.ndarray:
    """Buildings with lit-looking facades against a bright dusk sky."""
    x, y = _grid()
    image = _sky(x, y, (0.5, 0.5), (0.45, 0.55, 0.85), (1.0, 0.8, 0.55))
    edges = np.sort(rng.uniform(0, 1, 13))
    for left, right in zip(np.concatenate([[0.0], edges]), np.concatenate([edges, [1.0]])):
        top = rng.uniform(0.25, 0.6)
        building = (x >= left) & (x < right) & (y > top)
        colour = rng.uniform(0.3, 0.9, 3)
        facade = _dim_texture(rng, colour, rng.uniform(0.06, 0.11))
        windows = ((np.floor(x * 90) % 3 == 0) | (np.floor(y * 60) % 3 == 0))[..., None]
        image = np.where(building[..., None], facade * np.where(windows, 0.6, 1.15), image)
    street = y > 0.88
    return np.where(street[..., None], _dim_texture(rng, (0.5, 0.5, 0.55), 0.07), image)


SCENES = {
    "backlit_sunset.jpg": sunset_silhouette,
    "backlit_window.jpg": window_interior,
    "backlit_skyline.jpg": city_skyline,
}


def main() -> None:
    rng = np.random.default_rng(SEED)
    for name, render in SCENES.items():
        pixels = np.clip(render(rng), 0, 1)
        Image.fromarray((pixels * 255).round().astype(np.uint8)).save(OUTPUT_DIR / name, quality=JPEG_QUALITY)
        print(f"wrote {OUTPUT_DIR / name} ({(OUTPUT_DIR / name).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
