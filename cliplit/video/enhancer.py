"""`VideoEnhancer`: video files enhanced with an `Enhancer`'s settings (the Python API of `cliplit enhance clip.mp4`).

    from cliplit import Enhancer
    from cliplit.video.enhancer import VideoEnhancer

    video = VideoEnhancer(Enhancer(model, mode="fast"), codec="h264")
    video.enhance_file("clip.mp4", "enhanced/clip.mp4")

Every frame is enhanced exactly as `Enhancer` enhances an image (docs/video.md, "Temporal stability").
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

from ..engine.settings import DENOISE_AUTO
from ..errors import SettingsError, display_name
from .reading import VideoLimits, is_real
from .scene_denoise import SceneDenoiser
from .settings import DEFAULT_MAX_SECONDS, DEFAULT_VIDEO_CODEC, GPU_FRAME_BATCH
from .transcode import VideoOptions, enhance_video


class VideoEnhancer:
    """
    An `Enhancer` (or a model, with an `EngineSettings` or its fields as keyword arguments) applied to video files.

    - `codec` ("auto": h264, av1 or vp9 for .webm; "h264", "hevc", "av1", "vp9"), `crf` (None: the codec's
      default; checked against the codec's range here, and per file for "auto"), `strip_metadata`: how it is written;
    - `strength`: the enhancement's strength (None: the engine's own);
    - `batch_size`: frames enhanced together (`Enhancer.enhance_frames`; None: `GPU_FRAME_BATCH` on a GPU, else 1);
    - `max_megapixels` (per frame) and `max_seconds`: the largest video accepted (None: no limit);
      `limit_options`: the two settings named when a video is refused (None each: not named).
    """

    def __init__(self, enhancer, settings=None, *, codec: str = DEFAULT_VIDEO_CODEC, crf: float | None = None,
                 strip_metadata: bool = False, max_megapixels: float | None = None,
                 max_seconds: float | None = DEFAULT_MAX_SECONDS, strength: float | None = None, batch_size: int | None = None,
                 limit_options: tuple[str | None, str | None] = ("--max-megapixels", "--max-duration"), **engine_changes):
        from ..engine.enhancer import Enhancer
        from ..model.architecture import check_strength
        from .encoders import check_crf

        check_crf(codec, crf)
        self.enhancer = enhancer if isinstance(enhancer, Enhancer) else Enhancer(enhancer, settings, **engine_changes)
        self.strength = None if strength is None else check_strength(strength)
        if batch_size is not None and not (is_real(batch_size) and math.isfinite(batch_size) and int(batch_size) == batch_size >= 1):
            raise SettingsError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
        if batch_size is None:
            batch_size = GPU_FRAME_BATCH if self.enhancer.device.type == "cuda" else 1
        self.options = VideoOptions(codec=codec, crf=crf, strip_metadata=strip_metadata,
                                    limits=VideoLimits(max_megapixels, max_seconds, *limit_options), batch_size=int(batch_size))

    def enhance_frames(self, images):
        """One video's frames (a list of `DecodedImage`, in order) -> enhanced, with this video's strength."""
        return self.enhancer.enhance_frames(images, self.strength)

    def frame_enhancer(self) -> Callable:
        """What enhances one video's frames, in order, a list at a time: `enhance_frames`, or with `denoise="auto"`
        a `SceneDenoiser` of the video's own (one denoising level per scene)."""
        if self.enhancer.settings.denoise == DENOISE_AUTO:
            return SceneDenoiser(self.enhancer, self.strength)
        return self.enhance_frames

    def enhance_file(self, source: str | os.PathLike, target: str | os.PathLike, overwrite: bool = False,
                     on_start: Callable[[int], None] | None = None, on_frame: Callable[[], None] | None = None,
                     on_note: Callable[[str], None] | None = None, on_denoise: Callable[[str], None] | None = None) -> int:
        """Enhance the video `source` into `target` (same container kind: give it the same extension);
        returns the number of frames. Refuses to replace `source`, and an existing `target` unless `overwrite`.
        `on_start(estimated_frames)`, `on_frame()` and `on_note(text)` (a stream left out) report progress;
        `on_denoise(text)` gets what `denoise="auto"` did in each scene, once the video is written (nothing if it changed nothing)."""
        source, target = Path(source), Path(target)
        if target.exists() and source.exists() and os.path.samefile(source, target):
            raise SettingsError(f"{display_name(target)}: is the input; choose another output")
        if target.exists() and not overwrite:
            raise SettingsError(f"{display_name(target)}: exists (pass overwrite=True to replace it)")
        frames = self.frame_enhancer()
        written = enhance_video(source, target, frames, self.options, on_start=on_start, on_frame=on_frame, on_note=on_note)
        if on_denoise is not None and isinstance(frames, SceneDenoiser) and (note := frames.summary(display_name(source))):
            on_denoise(note)
        return written


__all__ = ["VideoEnhancer"]
