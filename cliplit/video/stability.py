"""Temporal stability of a video, measured as the warping error of Lai et al. (ECCV 2018, "Learning
Blind Video Temporal Consistency"): how much each frame differs from the previous one carried along
the motion of the scene, where that motion is visible in both.

    E_warp(V) = 1/(T-1) * sum_t [ sum_i M_t(i) * ||V_t(i) - W(V_{t-1})(i)||^2 / sum_i M_t(i) ]

The flow is computed on the *input* frames (OpenCV's Farneback, from frame t back to t-1) and used
for both the input and the output, so the two figures compare like with like; M_t masks occluded
pixels by the forward-backward consistency check of Sundaram et al. (ECCV 2010), as Lai et al. do.
A per-frame method that flickers or pumps has a higher error than its input; a stable one about the
input's own (the input's error is not zero: interpolation and newly revealed areas).
"""

from __future__ import annotations

import numpy as np

# Farneback parameters (OpenCV's documented example): pyramid scale, levels, window, iterations,
# polynomial neighbourhood and its Gaussian sigma.
FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)
# Sundaram et al.'s consistency check: |f + b(x + f)|^2 < ALPHA (|f|^2 + |b(x + f)|^2) + BETA.
CONSISTENCY_ALPHA = 0.01
CONSISTENCY_BETA = 0.5


def _gray(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.clip(frame * 255 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)


def _warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample `image` at x + flow(x) (bilinear; borders replicated)."""
    import cv2

    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(image, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def motion(reference: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """
    For each pair of consecutive `reference` frames ((H, W, 3) float in [0, 1]): the backward flow from
    frame t to t-1, (H, W, 2) float32, and the mask (H, W) bool of pixels visible in both.
    """
    import cv2

    grays = [_gray(frame) for frame in reference]
    pairs = []
    for previous, current in zip(grays, grays[1:]):
        backward = cv2.calcOpticalFlowFarneback(current, previous, None, **FARNEBACK)
        forward = cv2.calcOpticalFlowFarneback(previous, current, None, **FARNEBACK)
        forward_at = _warp(forward, backward)  # the forward flow where each pixel came from
        round_trip = backward + forward_at
        limit = CONSISTENCY_ALPHA * ((backward ** 2).sum(-1) + (forward_at ** 2).sum(-1)) + CONSISTENCY_BETA
        pairs.append((backward, (round_trip ** 2).sum(-1) < limit))
    return pairs


def warping_error(frames: list[np.ndarray], reference: list[np.ndarray] | None = None, pairs=None) -> float:
    """
    E_warp of `frames` ((H, W, 3) float arrays in [0, 1]) along the motion of `reference` (default: the
    frames themselves; pass the input video to score an output). `pairs`: `motion(reference)`, when
    computed once for several outputs. Mean squared error per pixel and channel, in [0, 1] units.
    """
    if len(frames) < 2:
        raise ValueError("the warping error needs at least two frames")
    pairs = motion(reference if reference is not None else frames) if pairs is None else pairs
    errors = []
    for (flow, visible), previous, current in zip(pairs, frames, frames[1:]):
        squared = ((current.astype(np.float32) - _warp(previous.astype(np.float32), flow)) ** 2).mean(-1)
        errors.append(float(squared[visible].mean()) if visible.any() else 0.0)
    return float(np.mean(errors))


__all__ = ["motion", "warping_error"]
