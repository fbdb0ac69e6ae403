"""`--denoise auto` on a video: one level per scene, so that the cleaning itself does not flicker.

Measured frame by frame, the noise level of an H.264 or HEVC video would move with every frame type
(an intra frame keeps more of the noise than the predicted frames around it) and with the content,
and the cleaning with it. `SceneDenoiser` measures `auto` (`cliplit.engine.denoise.resolve_plan`: the
noise, the codec's subsampled chroma, a JPEG history) on the first decoded frame of each scene and
cleans every frame of the scene with that plan, until the next cut (`is_cut`: the frame's 16x16 luma
thumbnail, each divided by its mean so that an exposure change is no cut, differs from the previous
frame's by more than `CUT_CHANGE` on average).
"""

from __future__ import annotations

import numpy as np

from ..engine.denoise_report import describe
from ..engine.settings import DENOISE_AUTO, DENOISE_OFF

THUMBNAIL_SIDE = 16
# Mean absolute change of the mean-normalized thumbnail that makes a scene cut: on generated 256 x 192 clips
# (cliplit.video.scenes) a 2-pixel pan changes it by 0.01-0.02, exposure flicker and fresh noise by < 0.01,
# a white block sliding in over a third of the frame by 0.09-0.14, a cut by 0.27-0.75
CUT_CHANGE = 0.2
MAX_LISTED_SCENES = 4  # the note lists the first scenes' plans, then counts the rest


def thumbnail(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] -> (16, 16) float32 luma means, divided by their own mean (exposure-free)."""
    import cv2

    luma = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(luma, (THUMBNAIL_SIDE, THUMBNAIL_SIDE), interpolation=cv2.INTER_AREA)
    return small / max(float(small.mean()), 1e-6)


class SceneDenoiser:
    """
    A video's frame enhancer (called with its frames in order, a list at a time) for an engine whose
    `denoise` is "auto": each scene's first frame enhanced with "auto", the rest of the scene with the
    plan found there (`DenoisePlan`, or "off" where it found nothing to clean). One per video.
    """

    def __init__(self, enhancer, strength: float | None = None):
        self.enhancer = enhancer
        self.strength = strength
        self.scenes: list[tuple[int, object | None]] = []  # (first frame, 1-based; its plan) per scene
        self._frames = 0
        self._previous: np.ndarray | None = None

    def is_cut(self, pixels: np.ndarray) -> bool:
        """Whether the frame `pixels` (H, W, 3) starts a new scene (the first frame does); remembers it."""
        current = thumbnail(pixels)
        cut = self._previous is None or float(np.abs(current - self._previous).mean()) > CUT_CHANGE
        self._previous = current
        return cut

    def __call__(self, images: list) -> list:
        enhanced, scene_run = [], []  # frames of the current scene waiting to be enhanced together

        def flush() -> None:
            if scene_run:
                enhanced.extend(self.enhancer.enhance_frames(scene_run, self.strength, self.scenes[-1][1] or DENOISE_OFF))
                scene_run.clear()

        for image in images:
            self._frames += 1
            if self.is_cut(image.pixels):  # a scene starts: measured on its first frame
                flush()
                first = self.enhancer.enhance_decoded(image, self.strength, DENOISE_AUTO)[0]
                self.scenes.append((self._frames, first.denoised))
                enhanced.append(first)
            else:
                scene_run.append(image)
        flush()
        return enhanced

    def summary(self, name: str) -> str | None:
        """The `note:` text for the video `name`: each cleaned scene's plan (None: no scene was changed)."""
        cleaned = [(frame, plan) for frame, plan in self.scenes if plan is not None]
        if not cleaned:
            return None
        listed = "; ".join(f"scene from frame {frame}: {describe(plan, 'video')}" for frame, plan in cleaned[:MAX_LISTED_SCENES])
        more = f"; {len(cleaned) - MAX_LISTED_SCENES} more" if len(cleaned) > MAX_LISTED_SCENES else ""
        return f"{name}: --denoise auto, one level per scene ({len(cleaned)} of {len(self.scenes)} scenes cleaned): {listed}{more}"


__all__ = ["CUT_CHANGE", "SceneDenoiser", "thumbnail"]
