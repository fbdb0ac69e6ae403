"""Video settings and their defaults, importable without PyAV, numpy or torch (for `cliplit --help`)."""

from __future__ import annotations

import os

VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi")
# --video-codec name -> FFmpeg encoders to try, in order, and the default constant-rate factor of each:
# 18 is x264's visually lossless setting; the others are their encoders' equivalents (docs/video.md).
VIDEO_ENCODERS = {"h264": ("libx264",), "hevc": ("libx265",), "av1": ("libsvtav1", "libaom-av1")}
DEFAULT_CRF = {"h264": 18, "hevc": 20, "av1": 24}
DEFAULT_VIDEO_CODEC = "h264"
DEFAULT_MAX_SECONDS = 3600.0
GPU_FRAME_BATCH = 4  # frames enhanced in one pass on a GPU (on a CPU the network already fills every core)


def is_video_file(path: str | os.PathLike) -> bool:
    """True for the file names `cliplit enhance` treats as videos (by extension, case-insensitive)."""
    return os.path.splitext(os.fspath(path))[1].lower() in VIDEO_EXTENSIONS


__all__ = ["DEFAULT_CRF", "DEFAULT_MAX_SECONDS", "DEFAULT_VIDEO_CODEC", "GPU_FRAME_BATCH", "VIDEO_ENCODERS", "VIDEO_EXTENSIONS",
           "is_video_file"]
