"""The streaming video pipeline: decode -> enhance -> encode, overlapped, with bounded memory.

Three stages run at once, joined by queues of at most `FRAME_QUEUE` frames (so memory follows the
frame size, never the length of the video):

1. a reader thread demuxes the input in file order, decodes the video stream and converts each frame
   to RGB (`DecodedImage`: 8-bit, or 16-bit for 10/12-bit sources) with the frame's own colour matrix
   and range; the packets of every other stream (audio, subtitles, data) ride along untouched;
2. the calling thread enhances each frame (the network; PyTorch and FFmpeg release the GIL);
3. a writer thread converts back to YUV with the same matrix and range, encodes with each frame's
   own timestamp (variable frame rate kept) and muxes the copied packets as they came, without
   re-encoding them.

The output goes to a temporary file beside the target, renamed over it only when complete: an error
or an interruption (Ctrl-C, SIGTERM) leaves nothing behind.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CLIPLITError, display_name, first_line
from ..imaging.codec import DecodedImage, decode_array, encode_array
from ..safety.outputs import atomic_write
from .reading import VideoError, VideoLimits, encoder_name, import_av, open_video
from .settings import DEFAULT_CRF, DEFAULT_VIDEO_CODEC
from .streams import copyable_streams

FRAME_QUEUE = 4  # decoded (and enhanced) frames held between stages, each
QUEUE_POLL_SECONDS = 0.1  # how often a blocked stage checks whether the others stopped
TRUNCATION_TOLERANCE_FRAMES = 2  # a video ending this many frame intervals before its stated end is truncated
HIGH_BIT_DEPTH = 8  # sources with more bits per component are read (and, where the codec can, written) at 16 bits
# Container tags FFmpeg's muxers write themselves (copying them would state the input's muxer).
MUXER_TAGS = ("major_brand", "minor_version", "compatible_brands", "encoder")
KEPT_WHEN_STRIPPED = ("language",)  # stream tags that say nothing about the user
# Encoders whose 4:2:0 needs even frame sizes: odd sizes are encoded 4:4:4 at the exact size instead.
EVEN_SIZE_ENCODERS = ("libx264", "libx265")
# Encoder options besides the CRF: x264's "fast" preset (at CRF 18 on 1080p, the same PSNR as its default
# "medium" for 1% more bytes and half the CPU time, docs/video.md), and quiet logs for x265 and SVT-AV1.
ENCODER_OPTIONS = {"libx264": {"preset": "fast"}, "libx265": {"x265-params": "log-level=error"},
                   "libsvtav1": {"svtav1-params": "log-level=1"}}


@dataclass(frozen=True)
class VideoOptions:
    """How a video is written: `codec` (h264, hevc, av1), `crf` (None: the codec's default in
    `settings.DEFAULT_CRF`), `strip_metadata` (drop container and stream tags such as creation time
    and location), the `limits` of what is read, and `batch_size`, the frames enhanced together."""

    codec: str = DEFAULT_VIDEO_CODEC
    crf: float | None = None
    strip_metadata: bool = False
    limits: VideoLimits = field(default_factory=VideoLimits)
    batch_size: int = 1


@dataclass
class _Item:
    """One decoded frame (None at the end) and the other streams' packets that came before it."""

    image: DecodedImage | None
    frame: object | None  # the decoded av.VideoFrame's properties: pts, colour tags, rotation
    packets: list


_END = object()


class _Stopped(Exception):
    """Another stage failed or the run was interrupted: this one stops quietly."""


def _put(channel: queue.Queue, item, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            channel.put(item, timeout=QUEUE_POLL_SECONDS)
            return
        except queue.Full:
            continue
    raise _Stopped


def _get(channel: queue.Queue, stop: threading.Event):
    while not stop.is_set():
        try:
            return channel.get(timeout=QUEUE_POLL_SECONDS)
        except queue.Empty:
            continue
    raise _Stopped


class _Stage(threading.Thread):
    """A pipeline thread that keeps its exception for the calling thread and stops the others on failure."""

    def __init__(self, work: Callable[[], None], stop: threading.Event, name: str):
        super().__init__(name=name, daemon=True)
        self._work, self._stop_event, self.error = work, stop, None

    def run(self) -> None:
        try:
            self._work()
        except _Stopped:
            pass
        except BaseException as error:  # reported by the calling thread, with the file name
            self.error = error
            self._stop_event.set()


def output_pixel_format(source_format, encoder: str, width: int, height: int) -> str:
    """
    The encoder's pixel format for frames of `source_format` (an av.VideoFormat): 4:2:0, 10-bit when the
    source has more than 8 bits and the encoder takes 10 bits; 4:4:4 for odd sizes where 4:2:0 needs even ones.
    """
    av = import_av()
    supported = {f.name for f in (av.codec.Codec(encoder, "w").video_formats or ())}
    deep = max(c.bits for c in source_format.components) > HIGH_BIT_DEPTH
    chroma = "444" if encoder in EVEN_SIZE_ENCODERS and (width % 2 or height % 2) else "420"
    for name in ([f"yuv{chroma}p10le"] if deep else []) + [f"yuv{chroma}p"]:
        if name in supported:
            return name
    return "yuv420p"


def frame_to_image(frame) -> DecodedImage:
    """A decoded av.VideoFrame -> RGB `DecodedImage` (16-bit for sources deeper than 8 bits), converted
    with the frame's own colour matrix and range."""
    deep = max(c.bits for c in frame.format.components) > HIGH_BIT_DEPTH
    return decode_array(frame.to_ndarray(format="rgb48le" if deep else "rgb24"))


def image_to_frame(image: DecodedImage, like, pixel_format: str):
    """An enhanced `DecodedImage` -> av.VideoFrame in `pixel_format`, with the colour matrix, range and
    timestamp of `like` (the decoded frame it came from)."""
    av = import_av()
    codes = encode_array(image)
    frame = av.VideoFrame.from_ndarray(codes, format="rgb48le" if codes.dtype.itemsize == 2 else "rgb24")
    frame.colorspace, frame.color_range = like.colorspace, like.color_range
    frame = frame.reformat(format=pixel_format)
    frame.color_primaries, frame.color_trc = like.color_primaries, like.color_trc
    frame.pts, frame.time_base = like.pts, like.time_base
    return frame


def _copied_metadata(tags, strip: bool) -> dict:
    return {k: v for k, v in dict(tags).items() if k not in MUXER_TAGS and (not strip or k in KEPT_WHEN_STRIPPED)}


def enhance_video(
    source: str | os.PathLike,
    target: str | os.PathLike,
    enhance_frames: Callable[[list[DecodedImage]], list[DecodedImage]],
    options: VideoOptions = VideoOptions(),
    on_start: Callable[[int], None] | None = None,
    on_frame: Callable[[], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> int:
    """
    Enhance every frame of the video `source` with `enhance_frames` (called in display order, in the calling
    thread, on lists of up to `options.batch_size` frames; it returns them enhanced) into `target`, keeping the container, timestamps, colour tags, rotation and the other
    streams (those its container cannot take back are left out, `cliplit.video.streams`, with a note
    to `on_note(text)`). `on_start(estimated_frames)` is called once the header is read, `on_frame()` per frame
    enhanced. Returns the number of frames written. Raises `VideoError` (one line, naming the file);
    nothing is left at `target` unless the whole video was written.
    """
    av = import_av()
    source, target = Path(source), Path(target)
    name = display_name(source)
    encoder = encoder_name(options.codec)
    crf = DEFAULT_CRF[options.codec] if options.crf is None else options.crf
    opened = open_video(source, options.limits)
    stop = threading.Event()
    decoded: queue.Queue = queue.Queue(FRAME_QUEUE)
    enhanced: queue.Queue = queue.Queue(FRAME_QUEUE)
    counts = {"read": 0, "written": 0}
    last_time = [None]  # end of the last decoded frame, in the video stream's time base
    input_container, video = opened.container, opened.video

    def read() -> None:
        video.thread_type = "AUTO"
        video.codec_context.options = {"err_detect": "explode"}  # a corrupt frame is an error, not concealed
        packets: list = []
        for packet in input_container.demux():
            if stop.is_set():
                raise _Stopped
            if packet.stream.index == video.index:
                try:
                    frames = video.decode(packet)
                except av.FFmpegError as error:
                    raise VideoError(f"{name}: frame {counts['read'] + 1} cannot be decoded "
                                     f"(truncated or corrupt: {first_line(error)})") from None
                for frame in frames:
                    counts["read"] += 1
                    if frame.pts is not None:
                        last_time[0] = frame.pts + (frame.duration or 0)
                    _put(decoded, _Item(frame_to_image(frame), frame, packets), stop)
                    packets = []
            elif packet.dts is not None and packet.size and packet.stream.index in copy_plan.copied:
                packets.append(packet)
        _put(decoded, _Item(None, None, packets), stop)
        _put(decoded, _END, stop)

    def write() -> None:
        output = None
        streams: dict[int, object] = {}
        video_out = pixel_format = None
        while (item := _get(enhanced, stop)) is not _END:
            if output is None:
                if item.frame is None:
                    raise VideoError(f"{name}: holds no decodable video frame")
                output = av.open(os.fspath(partial), "w")
                output.metadata.update(_copied_metadata(input_container.metadata, options.strip_metadata))
                for stream in input_container.streams:
                    if stream.index == video.index:
                        pixel_format = output_pixel_format(item.frame.format, encoder, item.frame.width, item.frame.height)
                        video_out = _add_video_stream(output, video, item.frame, encoder, pixel_format, crf, opened.frame_rate)
                        streams[stream.index] = video_out
                    elif stream.index in copy_plan.copied:
                        streams[stream.index] = _add_copied_stream(output, stream, name)
                    else:
                        continue
                    streams[stream.index].metadata.update(_copied_metadata(stream.metadata, options.strip_metadata))
            for packet in item.packets:
                packet.stream = streams[packet.stream.index]
                output.mux(packet)
            if item.image is not None:
                output.mux(video_out.encode(image_to_frame(item.image, item.frame, pixel_format)))
                counts["written"] += 1
        if output is None:
            raise VideoError(f"{name}: holds no decodable video frame")
        output.mux(video_out.encode())
        output.close()

    stages = [_Stage(read, stop, "cliplit-video-read"), _Stage(write, stop, "cliplit-video-write")]
    try:
        with atomic_write(target, target.suffix) as partial:  # where `write` encodes; renamed over `target` when complete
            copy_plan = copyable_streams(source, input_container, video.index, partial)  # read by `read` and `write`
            for note in copy_plan.notes:
                if on_note is not None:
                    on_note(note)
            if on_start is not None:
                on_start(opened.estimated_frames)
            for stage in stages:
                stage.start()
            pending: list[_Item] = []  # decoded frames waiting for a full batch, in order

            def enhance_pending() -> None:
                try:
                    images = enhance_frames([item.image for item in pending])
                except (RuntimeError, ValueError, MemoryError) as error:  # the network's (out of memory, ...): one line
                    raise VideoError(f"{name}: enhancement failed: {first_line(error)}") from None
                for item, image in zip(pending, images):
                    item.image = image
                    if on_frame is not None:
                        on_frame()
                    _put(enhanced, item, stop)
                pending.clear()

            try:
                while (item := _get(decoded, stop)) is not _END:
                    if item.image is None:  # the end: the frames before it first, then the packets it carries
                        enhance_pending()
                        _put(enhanced, item, stop)
                        continue
                    pending.append(item)
                    if len(pending) >= options.batch_size:
                        enhance_pending()
                enhance_pending()
                _put(enhanced, _END, stop)
                stages[1].join()
            except _Stopped:
                pass
            finally:
                stop.set()
                for stage in stages:
                    stage.join()
            _raise_stage_error(stages, name, target)
            if counts["written"] == 0:
                raise VideoError(f"{name}: holds no decodable video frame")
            _check_complete(video, opened.frame_rate, last_time[0], name)
        return counts["written"]
    finally:
        stop.set()
        input_container.close()


def _check_complete(video, frame_rate, end, name: str) -> None:
    """Refuse a file whose frames stop well before the end its header states (a truncated download or
    copy: FFmpeg's demuxers end such files quietly). Allows `TRUNCATION_TOLERANCE_FRAMES` frame intervals."""
    if video.duration is None or end is None or not video.time_base:
        return
    expected = (video.start_time or 0) + video.duration
    tolerance = TRUNCATION_TOLERANCE_FRAMES / (frame_rate * video.time_base)
    if end < expected - tolerance:
        raise VideoError(f"{name}: truncated: the frames end at {float(end * video.time_base):.2f} s of the "
                         f"{float(expected * video.time_base):.2f} s the file states")


def _raise_stage_error(stages: list[_Stage], name: str, target: Path) -> None:
    av = import_av()
    for stage in stages:
        error = stage.error
        if error is None:
            continue
        if isinstance(error, CLIPLITError):
            raise error
        if isinstance(error, av.FFmpegError | OSError | ValueError):
            what = "read" if stage is stages[0] else f"write {display_name(target)}"
            raise VideoError(f"{name}: cannot {what}: {first_line(error)}") from None
        raise error


def _add_video_stream(output, video, first_frame, encoder: str, pixel_format: str, crf: float, frame_rate):
    """The encoded video stream: the source's time base (each frame keeps its timestamp), size, colour
    tags and rotation; quality by constant-rate factor `crf`."""
    stream = output.add_stream(encoder, rate=frame_rate, options={"crf": f"{crf:g}", **ENCODER_OPTIONS.get(encoder, {})})
    stream.width, stream.height, stream.pix_fmt = first_frame.width, first_frame.height, pixel_format
    stream.time_base = video.time_base
    stream.codec_context.time_base = video.time_base
    stream.color_range, stream.colorspace = first_frame.color_range, first_frame.colorspace
    stream.color_primaries, stream.color_trc = first_frame.color_primaries, first_frame.color_trc
    if video.sample_aspect_ratio:
        stream.sample_aspect_ratio = video.sample_aspect_ratio
    if first_frame.rotation:
        stream.set_display_rotation(first_frame.rotation)
    return stream


def _add_copied_stream(output, stream, name: str):
    """A stream copied packet for packet (same codec parameters, no re-encoding)."""
    av = import_av()
    try:
        return output.add_stream_from_template(stream)
    except (av.FFmpegError, ValueError, NotImplementedError) as error:
        raise VideoError(f"{name}: stream #{stream.index} ({stream.type}, {stream.codec_context.name}) cannot be "
                         f"copied into {output.format.name}: {first_line(error)}") from None


__all__ = ["FRAME_QUEUE", "VideoOptions", "enhance_video", "frame_to_image", "image_to_frame", "output_pixel_format"]
