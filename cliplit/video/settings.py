"""Video settings and their defaults, importable without PyAV, numpy or torch (for `cliplit --help`)."""

from __future__ import annotations

import os

VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi")
# --video-codec name -> FFmpeg encoders to try, in order, and the default constant-rate factor of each:
# 18 is x264's visually lossless setting; the others are their encoders' equivalents (docs/video.md).
VIDEO_ENCODERS = {"h264": ("libx264",), "hevc": ("libx265",), "av1": ("libsvtav1", "libaom-av1"), "vp9": ("libvpx-vp9",)}
DEFAULT_CRF = {"h264": 18, "hevc": 20, "av1": 24, "vp9": 24}
# The constant-rate factors each codec's encoders take (x264 and x265: 0-51, fractions too; SVT-AV1, libaom
# and libvpx: whole numbers 0-63), checked before anything runs: x264 would clamp 1000 to 51 without a word.
CRF_RANGES = {"h264": (0, 51), "hevc": (0, 51), "av1": (0, 63), "vp9": (0, 63)}
WHOLE_CRF_CODECS = ("av1", "vp9")
ANY_CRF_RANGE = (min(low for low, _ in CRF_RANGES.values()), max(high for _, high in CRF_RANGES.values()))
AUTO_CODEC = "auto"  # the first of AUTO_CODECS that the output's container takes and this FFmpeg can encode
AUTO_CODECS = ("h264", "av1", "vp9")  # so .webm, which takes no H.264, gets AV1 (VP9 where FFmpeg has no AV1 encoder)
DEFAULT_VIDEO_CODEC = AUTO_CODEC
DEFAULT_MAX_SECONDS = 3600.0
GPU_FRAME_BATCH = 4  # frames enhanced in one pass on a GPU (on a CPU the network already fills every core)


def is_video_file(path: str | os.PathLike) -> bool:
    """True for the file names `cliplit enhance` treats as videos (by extension, case-insensitive)."""
    return os.path.splitext(os.fspath(path))[1].lower() in VIDEO_EXTENSIONS


__all__ = ["ANY_CRF_RANGE", "AUTO_CODEC", "AUTO_CODECS", "CRF_RANGES", "DEFAULT_CRF", "DEFAULT_MAX_SECONDS", "DEFAULT_VIDEO_CODEC",
           "GPU_FRAME_BATCH", "VIDEO_ENCODERS", "VIDEO_EXTENSIONS", "WHOLE_CRF_CODECS", "is_video_file"]
