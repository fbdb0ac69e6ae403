"""Temporal stabilization: the network's global context smoothed over time, reset at scene cuts.

CLIP-LIT's only non-local part is the pyramid pooling: the encoder's features averaged over the whole
frame in 1x1, 2x2, 3x3 and 6x6 cells (`cliplit.engine.tiling.average_pooled`), projected and fused
back into every pixel. Per frame, a bright object entering one corner changes those averages and so
the exposure of the whole frame (pumping); noise moves them a little on every frame (flicker).

`ContextSmoother` replaces each frame's pooled averages by an exponential moving average over the
frames so far (`weight` for the newest), and restarts from the frame itself when the averages jump
(`cut_threshold`: a scene cut, where the old context would be wrong). Only the pooled averages are
smoothed; every pixel's own features stay the frame's, so moving detail is never blended across frames.
`SmoothedContextRuntime` puts the smoother between pooling and projection for every path of the
engine: whole frames, exact tiles (pass 1 pools, the smoother runs once per frame) and fast mode.
The figures behind the defaults are in docs/video.md.
"""

from __future__ import annotations

import copy

import torch

from ..engine.runtime import Runtime

# Weight of the newest frame in the moving average of the pooled context, and the relative change of
# the 1x1 pooled features (mean absolute difference over mean absolute value) taken as a scene cut.
DEFAULT_SMOOTHING_WEIGHT = 0.2
DEFAULT_CUT_THRESHOLD = 0.25


class ContextSmoother:
    """
    Exponential moving average of a video's pooled grids (one (1, hidden, bin, bin) tensor per bin, as
    `average_pooled` returns them), restarted at scene cuts. One per video, called once per frame in order.
    """

    def __init__(self, weight: float = DEFAULT_SMOOTHING_WEIGHT, cut_threshold: float = DEFAULT_CUT_THRESHOLD):
        if not 0 < weight <= 1:
            raise ValueError(f"weight must be in (0, 1], got {weight}")
        self.weight = weight
        self.cut_threshold = cut_threshold
        self._state: list[torch.Tensor] | None = None
        self.cuts = 0

    def reset(self) -> None:
        self._state = None

    @staticmethod
    def change(previous: list[torch.Tensor], current: list[torch.Tensor]) -> float:
        """Relative change of the coarsest grid (the frame's mean features): mean |difference| / mean |value|."""
        old, new = previous[0].double(), current[0].double()
        return float((new - old).abs().mean() / old.abs().mean().clamp_min(1e-12))

    def __call__(self, pooled: list[torch.Tensor]) -> list[torch.Tensor]:
        if self._state is not None and [p.shape for p in pooled] != [s.shape for s in self._state]:
            self._state = None  # another resolution (a new video, or fast mode's low pass): start over
        if self._state is not None and self.change(self._state, pooled) > self.cut_threshold:
            self._state, self.cuts = None, self.cuts + 1
        if self._state is None:
            self._state = [p.clone() for p in pooled]
        else:
            self._state = [torch.lerp(s, p.to(s.dtype), self.weight) for s, p in zip(self._state, pooled)]
        return [s.clone() for s in self._state]


class SmoothedContextRuntime:
    """A `Runtime` whose pyramid context passes through `smoother` before it is projected; every other
    attribute is the wrapped runtime's. `whole` is `Runtime.whole` run on this wrapper."""

    whole = Runtime.whole

    def __init__(self, runtime, smoother: ContextSmoother):
        self._runtime = runtime
        self._smoother = smoother

    def __getattr__(self, name: str):
        return getattr(self._runtime, name)

    def project_context(self, pooled: list[torch.Tensor]) -> list[torch.Tensor]:
        return self._runtime.project_context(self._smoother(pooled))

    def scale_matched(self, scale_y: float, scale_x: float) -> "SmoothedContextRuntime":
        return SmoothedContextRuntime(self._runtime.scale_matched(scale_y, scale_x), self._smoother)


def stabilized(enhancer, smoother: ContextSmoother):
    """A shallow copy of `enhancer` (an `Enhancer`) whose runtime smooths the pooled context with `smoother`."""
    copied = copy.copy(enhancer)
    copied.runtime = SmoothedContextRuntime(enhancer.runtime, smoother)
    return copied


__all__ = ["ContextSmoother", "DEFAULT_CUT_THRESHOLD", "DEFAULT_SMOOTHING_WEIGHT", "SmoothedContextRuntime", "stabilized"]
