"""Generated scenes for measuring temporal stability (`cliplit.video.stability`), made from one photo.

Each returns a list of (height, width, 3) float32 frames in [0, 1]: the situations in which a
per-frame method can flicker or pump, with a known, simple motion.
"""

from __future__ import annotations

import numpy as np

SCENES = ("pan", "bright-entering", "exposure-flicker", "noise", "cut")
PAN_PIXELS_PER_FRAME = 2
BRIGHT_LEVEL = 0.98  # a lamp or a patch of sky: nearly white
FLICKER_AMPLITUDE = 0.08  # +-8% exposure, frame to frame
NOISE_SIGMA = 0.02  # Gaussian sensor noise, in [0, 1] units


def _crop(photo: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    return np.ascontiguousarray(photo[top : top + height, left : left + width], dtype=np.float32)


def make_scene(kind: str, photo: np.ndarray, frames: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """
    `kind` (one of `SCENES`) over `photo` ((H, W, 3) float in [0, 1], at least height x width plus
    `frames * PAN_PIXELS_PER_FRAME` columns for "pan" and twice the width for "cut"):

    - pan: the window slides right by `PAN_PIXELS_PER_FRAME` per frame;
    - bright-entering: a still window; a nearly white block slides in from the left over the frames;
    - exposure-flicker: a still window whose exposure changes by up to +-`FLICKER_AMPLITUDE` per frame;
    - noise: a still window with fresh Gaussian noise (sigma `NOISE_SIGMA`) on every frame;
    - cut: a still window, then at half the frames another part of the photo.
    """
    rng = np.random.default_rng(seed)
    still = _crop(photo, 0, 0, height, width)
    if kind == "pan":
        return [_crop(photo, 0, t * PAN_PIXELS_PER_FRAME, height, width) for t in range(frames)]
    if kind == "bright-entering":
        scene = []
        for t in range(frames):
            frame = still.copy()
            edge = round((t + 1) / frames * width / 3)  # the block covers a third of the width at the end
            frame[height // 4 : 3 * height // 4, :edge] = BRIGHT_LEVEL
            scene.append(frame)
        return scene
    if kind == "exposure-flicker":
        gains = 1 + rng.uniform(-FLICKER_AMPLITUDE, FLICKER_AMPLITUDE, frames)
        return [np.clip(still * gain, 0, 1).astype(np.float32) for gain in gains]
    if kind == "noise":
        return [np.clip(still + rng.normal(0, NOISE_SIGMA, still.shape), 0, 1).astype(np.float32) for _ in range(frames)]
    if kind == "cut":
        other = _crop(photo, 0, photo.shape[1] - width, height, width)
        return [still if t < frames // 2 else other for t in range(frames)]
    raise ValueError(f"scene must be one of {', '.join(SCENES)}, got {kind!r}")


__all__ = ["SCENES", "make_scene"]
