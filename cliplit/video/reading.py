"""Opening a video file for enhancement: PyAV imported at the edge, the limits checked from the
header before anything is decoded, and every failure a `VideoError` naming the file and the reason."""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..errors import CLIPLITError, SettingsError, display_name, first_line
from .settings import VIDEO_ENCODERS

PIXELS_PER_MEGAPIXEL = 1_000_000
FALLBACK_FRAME_RATE = Fraction(25)  # only when a file states no frame rate at all


class VideoError(CLIPLITError):
    """A video could not be read, enhanced or written; the message names the file first."""


def import_av():
    """PyAV, or one line naming the extra that installs it."""
    try:
        import av
    except ImportError:
        raise SettingsError("video files need PyAV: pip install 'cliplit[video]'") from None
    return av


def encoder_name(codec: str) -> str:
    """The FFmpeg encoder for `--video-codec` `codec` (h264, hevc, av1) that this PyAV build carries."""
    av = import_av()
    if codec not in VIDEO_ENCODERS:
        raise SettingsError(f"--video-codec must be one of {', '.join(VIDEO_ENCODERS)}, got {codec!r}")
    for name in VIDEO_ENCODERS[codec]:
        if name in av.codecs_available:
            return name
    raise SettingsError(f"--video-codec {codec}: this PyAV's FFmpeg has no encoder for it "
                        f"(looked for {', '.join(VIDEO_ENCODERS[codec])})")


@dataclass(frozen=True)
class VideoLimits:
    """The largest video accepted: megapixels per frame and seconds (None: no limit), and the options
    that set them, named in the refusals (None: the user cannot set them, as in the app)."""

    max_megapixels: float | None = None
    max_seconds: float | None = None
    megapixels_option: str | None = "--max-megapixels"
    seconds_option: str | None = "--max-duration"


def _set_by(option: str | None) -> str:
    return f" ({option})" if option else ""


@dataclass(frozen=True)
class VideoSource:
    """An open input: its PyAV container, the video stream to enhance, and what the header says."""

    container: object
    video: object
    frame_rate: Fraction
    estimated_frames: int
    seconds: float | None


def duration_seconds(container, video) -> float | None:
    """The duration the header states (the video stream's, else the container's), or None."""
    if video.duration is not None and video.time_base is not None:
        return float(video.duration * video.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def open_video(path: str | os.PathLike, limits: VideoLimits = VideoLimits()) -> VideoSource:
    """
    Open `path` and pick its first video stream (cover pictures aside); refuse what is not a video,
    holds no video stream, or is over `limits`, from the header alone. The caller closes `container`.
    """
    av = import_av()
    path = Path(path)
    name = display_name(path)
    if not path.exists():
        raise VideoError(f"{name}: no such file")
    if path.is_dir():
        raise VideoError(f"{name}: is a folder, not a video")
    try:
        container = av.open(os.fspath(path), metadata_errors="ignore")
    except av.FFmpegError as error:
        raise VideoError(f"{name}: not a video, or truncated or corrupt ({first_line(error)})") from None
    try:
        videos = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
        if not videos:
            raise VideoError(f"{name}: holds no video stream")
        video = videos[0]
        width, height = video.codec_context.width, video.codec_context.height
        if not width or not height:
            raise VideoError(f"{name}: the video stream states no frame size (corrupt or unsupported)")
        megapixels = width * height / PIXELS_PER_MEGAPIXEL
        if limits.max_megapixels is not None and megapixels > limits.max_megapixels:
            raise VideoError(f"{name}: {width} x {height} pixels per frame ({megapixels:.3g} MP) is over the "
                             f"{limits.max_megapixels:g} MP limit{_set_by(limits.megapixels_option)}")
        seconds = duration_seconds(container, video)
        if limits.max_seconds is not None and seconds is not None and seconds > limits.max_seconds:
            raise VideoError(f"{name}: {seconds:.1f} s is over the {limits.max_seconds:g} s limit{_set_by(limits.seconds_option)}")
        frame_rate = video.average_rate or video.guessed_rate or video.base_rate or FALLBACK_FRAME_RATE
        estimated = video.frames or (round(seconds * frame_rate) if seconds else 0)
        return VideoSource(container, video, Fraction(frame_rate), int(estimated), seconds)
    except BaseException:
        container.close()
        raise


__all__ = ["VideoError", "VideoLimits", "VideoSource", "duration_seconds", "encoder_name", "import_av", "open_video"]
