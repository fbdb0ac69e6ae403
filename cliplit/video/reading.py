"""Opening a video file for enhancement: PyAV imported at the edge, a file that holds an image refused
(whatever its name), the limits checked from the header before anything is decoded and then on every
decoded frame (`FrameRule`), and every failure a `VideoError` naming the file and the reason."""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..errors import CLIPLITError, SettingsError, display_name, first_line
from .settings import is_video_file
from .stated_size import stated_size

PIXELS_PER_MEGAPIXEL = 1_000_000
FALLBACK_FRAME_RATE = Fraction(25)  # only when a file states no frame rate at all
AV_TIME_BASE = 1_000_000  # FFmpeg's unit of a container's start time and duration (microseconds)
# FFmpeg's demuxers of still images (jpeg_pipe, png_pipe, jpegxl_pipe, ..., image2): a file they open is no video.
IMAGE_DEMUXER_MARK = "_pipe"
IMAGE_DEMUXERS = ("image2", "apng", "gif")
# The image formats a file named like a video is looked for (Pillow's names): those with a signature of their
# own; formats Pillow guesses without one (TGA) could match a video's first bytes.
SIGNED_IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP", "HEIF", "AVIF", "JPEG2000")


class VideoError(CLIPLITError):
    """A video could not be read, enhanced or written; the message names the file first."""


def import_av():
    """PyAV, or one line naming the extra that installs it."""
    try:
        import av
    except ImportError:
        raise SettingsError("video files need PyAV: pip install 'cliplit[video]'") from None
    return av


@dataclass(frozen=True)
class VideoLimits:
    """The largest video accepted: megapixels per frame and seconds (None: no limit), and the options
    that set them, named in the refusals (None: the user cannot set them, as in the app)."""

    max_megapixels: float | None = None
    max_seconds: float | None = None
    megapixels_option: str | None = "--max-megapixels"
    seconds_option: str | None = "--max-duration"

    def __post_init__(self) -> None:
        for name in ("max_megapixels", "max_seconds"):
            value = getattr(self, name)
            if value is not None and not (is_real(value) and math.isfinite(value) and value > 0):
                raise SettingsError(f"{name} must be a finite number > 0 (None: no limit), got {value!r}")


def is_real(value) -> bool:
    """Whether `value` is a real number (a bool is not one here)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _set_by(option: str | None) -> str:
    return f" ({option})" if option else ""


def _megapixels_over(width: int, height: int, limits: VideoLimits) -> str | None:
    """Why frames of `width` x `height` are over `limits` (None: they are not)."""
    megapixels = width * height / PIXELS_PER_MEGAPIXEL
    if limits.max_megapixels is None or megapixels <= limits.max_megapixels:
        return None
    return (f"{width} x {height} pixels per frame ({megapixels:.3g} MP) is over the {limits.max_megapixels:g} MP "
            f"limit{_set_by(limits.megapixels_option)}")


@dataclass
class FrameRule:
    """
    What every decoded frame of one video must be, checked by the decode loop on each frame before it is
    converted or enhanced (a header can state a small size or a short duration and the frames differ):
    within `limits` (its megapixels; its time from the first frame), and of the first frame's size.
    A frame whose size differs is refused: the encoders write one size per stream, and resizing it would
    change the video without a word. Frames without a timestamp count at `frame_rate`.
    """

    name: str
    limits: VideoLimits
    frame_rate: Fraction
    frames: int = 0
    size: tuple[int, int] | None = None
    start_seconds: float | None = None

    def check(self, frame) -> None:
        """Raise `VideoError` (one line naming the file and the frame) unless the decoded av.VideoFrame `frame`,
        the next one of the video, keeps the rule."""
        self.frames += 1
        size = (frame.width, frame.height)
        over = _megapixels_over(*size, self.limits)
        if over is not None:
            raise VideoError(f"{self.name}: frame {self.frames}: {over}")
        if self.size is None:
            self.size = size
        elif size != self.size:
            raise VideoError(f"{self.name}: frame {self.frames} is {size[0]} x {size[1]} pixels where the frames before it "
                             f"are {self.size[0]} x {self.size[1]}: a frame size that changes within a video is not "
                             "supported (no frame is resized)")
        seconds = frame.time if frame.time is not None else (self.frames - 1) / self.frame_rate
        if self.start_seconds is None:
            self.start_seconds = seconds
        elapsed = seconds - self.start_seconds
        if self.limits.max_seconds is not None and elapsed > self.limits.max_seconds:
            raise VideoError(f"{self.name}: frame {self.frames} comes at {elapsed:.1f} s, over the "
                             f"{self.limits.max_seconds:g} s limit{_set_by(self.limits.seconds_option)}")


def image_format_inside(path: str | os.PathLike) -> str | None:
    """
    The image format (Pillow's name: JPEG, PNG, HEIF, ...: `SIGNED_IMAGE_FORMATS`) of the file at `path`
    when its content is an image, whatever its name says (a photo named .mp4); None when it is not one
    Pillow (with the HEIF plugin) identifies, or not a regular file. Only the file's first bytes are read.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    from ..imaging.formats import heif_plugin_error

    if not Path(path).is_file():
        return None
    heif_plugin_error()  # registers the HEIF/AVIF opener where it is installed
    Image.init()
    formats = [name for name in SIGNED_IMAGE_FORMATS if name in Image.OPEN]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=formats) as image:
                return image.format or "image"
    except Image.DecompressionBombError:
        return "image"  # an image too large to identify safely: read as an image, it is refused in one line
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def holds_video(path: str | os.PathLike) -> bool:
    """Whether `path` is enhanced as a video: named like one (`settings.is_video_file`) and not holding an image."""
    return is_video_file(path) and image_format_inside(path) is None


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
        return container.duration / AV_TIME_BASE
    return None


def tagged_duration_seconds(video) -> float | None:
    """The duration a Matroska muxer writes into the video stream's tags ("DURATION": "HH:MM:SS.nnnnnnnnn", or
    "DURATION-<language>" from mkvmerge), which is all such a file states about the stream; None without it."""
    for key, value in video.metadata.items():
        if key.upper().split("-")[0] == "DURATION":
            try:
                hours, minutes, seconds = value.split(":")
                return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
            except ValueError:
                return None
    return None


def open_video(path: str | os.PathLike, limits: VideoLimits = VideoLimits()) -> VideoSource:
    """
    Open `path` and pick its first video stream (cover pictures aside); refuse what is not a video (an
    image too, whatever its name), holds no video stream, or is over `limits` by its header (the decode
    loop checks every frame again: `FrameRule`). The caller closes `container`.
    """
    av = import_av()
    path = Path(path)
    name = display_name(path)
    if not path.exists():
        raise VideoError(f"{name}: no such file")
    if path.is_dir():
        raise VideoError(f"{name}: is a folder, not a video")
    image_format = image_format_inside(path)
    if image_format is not None:
        raise VideoError(f"{name}: is an image ({image_format}), not a video: enhance it as an image (named as one)")
    stated, size = stated_size(path), path.stat().st_size
    if stated is not None and size < stated:  # a cut file, whose lost packets need not be the last frames
        raise VideoError(f"{name}: truncated: the file has {size} of the {stated} bytes its container states")
    try:
        container = av.open(os.fspath(path), metadata_errors="ignore")
    except av.FFmpegError as error:
        raise VideoError(f"{name}: not a video, or truncated or corrupt ({first_line(error)})") from None
    try:
        if container.format.name.endswith(IMAGE_DEMUXER_MARK) or container.format.name in IMAGE_DEMUXERS:
            raise VideoError(f"{name}: is an image ({container.format.name}), not a video")
        videos = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
        if not videos:
            raise VideoError(f"{name}: holds no video stream")
        video = videos[0]
        width, height = video.codec_context.width, video.codec_context.height
        if not width or not height:
            raise VideoError(f"{name}: the video stream states no frame size (corrupt or unsupported)")
        over = _megapixels_over(width, height, limits)  # from the header; `FrameRule` checks every frame again
        if over is not None:
            raise VideoError(f"{name}: {over}")
        seconds = duration_seconds(container, video)
        if limits.max_seconds is not None and seconds is not None and seconds > limits.max_seconds:
            raise VideoError(f"{name}: {seconds:.1f} s is over the {limits.max_seconds:g} s limit{_set_by(limits.seconds_option)}")
        frame_rate = video.average_rate or video.guessed_rate or video.base_rate or FALLBACK_FRAME_RATE
        estimated = video.frames or (round(seconds * frame_rate) if seconds else 0)
        return VideoSource(container, video, Fraction(frame_rate), int(estimated), seconds)
    except BaseException:
        container.close()
        raise


__all__ = ["AV_TIME_BASE", "FrameRule", "tagged_duration_seconds", "VideoError", "VideoLimits", "VideoSource", "duration_seconds", "holds_video", "image_format_inside",
           "import_av", "open_video"]
