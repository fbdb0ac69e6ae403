"""Which of a video's other streams (audio, subtitles, data, attachments) its container can take back as copies.

FFmpeg's muxers refuse some streams they demux: a QuickTime timecode track (`tmcd`, which the muxer
writes itself from the video stream's `timecode` tag), the iPhone's `mebx` metadata tracks, some
codecs in some containers. The refusal comes late, when the header or the trailer is written, and it
fails the whole file. So before the real run, `copyable_streams` copies the first packets of each
stream (those up to the video's 8th packet), beside the main video stream (copied too), into a small
trial file of the output's container:
the streams that fail there are left out, with a note naming them, instead of failing the video.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import display_name
from .reading import import_av

COPIED_TYPES = ("audio", "subtitle", "data", "video", "attachment")
TRIAL_PACKETS = 8  # packets of each stream copied into the trial file, up to the video's 8th
TRIAL_MARK = ".trial"


@dataclass(frozen=True)
class StreamCopyPlan:
    """The indices of the input streams copied without re-encoding, and a note per stream left out."""

    copied: frozenset[int]
    notes: list[str] = field(default_factory=list)


def _describe(stream) -> str:
    codec = stream.codec_context.name if stream.codec_context is not None else None
    handler = stream.metadata.get("handler_name")
    return f"#{stream.index} ({', '.join(part for part in (stream.type, codec or handler) if part)})"


def _left_out_note(name: str, kind: str, description: str, timecode: bool) -> str:
    note = f"{name}: stream {description} cannot be copied into .{kind}: left out"
    return note + " (the timecode itself is kept: the muxer writes it anew from the video's tag)" if timecode else note


def _trial_copy(source: Path, trial: Path, video_index: int, indices: set[int]) -> bool:
    """True when the streams `indices` of `source` (`video_index` among them) can be copied together into
    a file named like `trial`, with the packets that come up to the video's `TRIAL_PACKETS`-th."""
    av = import_av()
    try:
        with av.open(os.fspath(source), metadata_errors="ignore") as container:
            output = av.open(os.fspath(trial), "w")
            try:
                streams = {s.index: output.add_stream_from_template(s) for s in container.streams if s.index in indices}
                counts = dict.fromkeys(streams, 0)
                for packet in container.demux():  # to the video's TRIAL_PACKETS-th packet: a few frames of the file
                    index = packet.stream.index
                    if index in counts and packet.dts is not None and packet.size and counts[index] < TRIAL_PACKETS:
                        counts[index] += 1
                        packet.stream = streams[index]
                        output.mux(packet)
                    if counts.get(video_index, 0) >= TRIAL_PACKETS:
                        break
            finally:
                output.close()
        return True
    except (av.FFmpegError, ValueError, NotImplementedError, OSError):
        return False
    finally:
        trial.unlink(missing_ok=True)


def copyable_streams(source: str | os.PathLike, container, video_index: int, target: str | os.PathLike) -> StreamCopyPlan:
    """
    The streams of `source` (open as the PyAV `container`) other than the enhanced one (`video_index`) that its container, written
    at `target` (its name gives the container), takes as copies. Tried all together first (the usual
    case: one trial), then one by one. If even the video stream alone cannot be copied (a codec the
    container holds only once re-encoded), the trial says nothing and every stream is kept as before.
    """
    source, target = Path(source), Path(target)
    trial = target.with_name(f".{target.name}.{os.getpid()}{TRIAL_MARK}{target.suffix}")
    others = {s.index: _describe(s) for s in container.streams if s.index != video_index and s.type in COPIED_TYPES}
    timecodes = {s.index for s in container.streams if "timecode" in s.metadata}
    if not others or _trial_copy(source, trial, video_index, {video_index, *others}) or not _trial_copy(source, trial, video_index, {video_index}):
        return StreamCopyPlan(frozenset(others))
    copied = {index for index in others if _trial_copy(source, trial, video_index, {video_index, index})}
    if not _trial_copy(source, trial, video_index, {video_index, *copied}):
        copied = set()
    name, kind = display_name(source), target.suffix.lstrip(".")
    notes = [_left_out_note(name, kind, others[index], {index, video_index} <= timecodes)
             for index in sorted(set(others) - copied)]
    return StreamCopyPlan(frozenset(copied), notes)


__all__ = ["StreamCopyPlan", "copyable_streams"]
