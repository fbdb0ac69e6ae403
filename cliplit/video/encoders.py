"""Which encoder writes an enhanced video, checked before anything is read or loaded.

- the codec: `--video-codec auto` (the default) takes the first of `settings.AUTO_CODECS` that the
  output's container takes (FFmpeg's muxer is asked) and this PyAV's FFmpeg can encode: H.264 for
  .mp4 .mov .m4v .mkv .avi, AV1 (else VP9) for .webm; a codec named that the container cannot hold is
  one line naming `--video-codec`, not FFmpeg's "'webm' format does not support 'libx264' codec";
- the constant-rate factor, within the range its encoders take (`settings.CRF_RANGES`);
- the encoder opened with its own chatter (SVT-AV1's "Svt[info]" banner, x265's lines) kept off stderr.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import SettingsError, display_name
from ..safety.native_lines import without_native_lines
from .reading import VideoError, import_av, is_real
from .settings import ANY_CRF_RANGE, AUTO_CODEC, AUTO_CODECS, CRF_RANGES, DEFAULT_CRF, VIDEO_ENCODERS, WHOLE_CRF_CODECS

CODEC_OPTION, CRF_OPTION = "--video-codec", "--video-crf"
# Encoder options besides the CRF: x264's "fast" preset (at CRF 18 on 1080p, the same PSNR as its default
# "medium" for 1% more bytes and half the CPU time, docs/video.md), x265's errors only, and libvpx in
# constant-quality mode (a bit rate of 0: the CRF alone sets the quality) with its faster row-threaded setting.
ENCODER_OPTIONS = {"libx264": {"preset": "fast"}, "libx265": {"x265-params": "log-level=error"},
                   "libvpx-vp9": {"b": "0", "row-mt": "1", "cpu-used": "4"}}
# Options for an encoder in one container: AVI stores no presentation times, so H.264 B-frames (reordered
# frames) would be read back with scrambled timestamps; AVI gets H.264 without them.
CONTAINER_ENCODER_OPTIONS = {("avi", "libx264"): {"bf": "0"}}
# Codecs a muxer's codec query accepts but its header refuses: FFmpeg's mov muxer says "av1 only supported
# in MP4 and AVIF", "vp9 only supported in MP4" (measured with PyAV 18.1's FFmpeg).
REFUSED_BY_MUXER = {"mov": ("av1", "vp9")}
# Lines encoders print on stderr themselves, past FFmpeg's logging (dropped while an encoder opens).
ENCODER_LINE_PREFIXES = (b"Svt[", b"x265 [")


@dataclass(frozen=True)
class EncoderChoice:
    """How a video is encoded: `codec` (a `VIDEO_ENCODERS` key), the FFmpeg `encoder` and its constant-rate factor `crf`."""

    codec: str
    encoder: str
    crf: float


def _check_codec(codec: str) -> str:
    if codec != AUTO_CODEC and codec not in VIDEO_ENCODERS:
        raise SettingsError(f"{CODEC_OPTION} must be one of {', '.join((AUTO_CODEC, *VIDEO_ENCODERS))}, got {codec!r}")
    return codec


def encoder_name(codec: str) -> str | None:
    """The FFmpeg encoder for `codec` (h264, hevc, av1, vp9) that this PyAV's FFmpeg carries, or None."""
    av = import_av()
    return next((name for name in VIDEO_ENCODERS[_check_codec(codec)] if name in av.codecs_available), None)


def check_crf(codec: str, crf: float | None) -> float | None:
    """
    `crf` when `codec`'s encoders take it (`settings.CRF_RANGES`; for "auto", the codec is known per file:
    any codec's range); None stays None (the codec's default). Raises `SettingsError` naming `--video-crf`.
    Needs no PyAV: the command line checks it before reading anything.
    """
    _check_codec(codec)
    if crf is None:
        return None
    if not is_real(crf):
        raise SettingsError(f"{CRF_OPTION} {crf!r}: a number")
    low, high = ANY_CRF_RANGE if codec == AUTO_CODEC else CRF_RANGES[codec]
    whole = codec in WHOLE_CRF_CODECS
    if not low <= crf <= high or (whole and crf != int(crf)):
        takes = f"whole numbers from {low} to {high}" if whole else f"{low} to {high}"
        raise SettingsError(f"{CRF_OPTION} {crf:.15g}: {'the codecs take' if codec == AUTO_CODEC else codec + ' takes'} {takes}")
    return crf


class _NamedBuffer(io.BytesIO):
    """An in-memory file with a name, from which FFmpeg guesses the muxer (nothing touches the disk)."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name


def container_codecs(target: str | os.PathLike) -> tuple[str, ...]:
    """The codecs of `VIDEO_ENCODERS` that the muxer of `target`'s container (named by its extension) takes."""
    av = import_av()
    try:
        output = av.open(_NamedBuffer(Path(target).name), "w")
    except (av.FFmpegError, ValueError):
        return ()
    try:
        refused = REFUSED_BY_MUXER.get(output.format.name, ())
        return tuple(codec for codec in VIDEO_ENCODERS if codec in output.supported_codecs and codec not in refused)
    finally:
        output.close()


def choose_encoder(target: str | os.PathLike, codec: str = AUTO_CODEC, crf: float | None = None, name: str | None = None) -> EncoderChoice:
    """
    The encoder of the video written at `target` (its extension names the container): `codec`, or for
    "auto" the first of `AUTO_CODECS` the container takes that this FFmpeg encodes; `crf` checked against
    its range (None: the codec's default). Raises `VideoError` naming `name` (the input) and the option to change.
    """
    name = name or display_name(target)
    kind = Path(target).suffix.lower()
    taken = container_codecs(target)
    if codec == AUTO_CODEC:
        codec = next((c for c in AUTO_CODECS if c in taken and encoder_name(c)), None)
        if codec is None:
            raise VideoError(f"{name}: this PyAV's FFmpeg has no encoder for a {kind} file "
                             f"(it takes {', '.join(taken) or 'none of ' + ', '.join(VIDEO_ENCODERS)})")
    elif codec in VIDEO_ENCODERS and codec not in taken:
        raise VideoError(f"{name}: a {kind} file takes {', '.join(taken)}, not {codec} ({CODEC_OPTION})")
    encoder = encoder_name(codec)
    if encoder is None:
        raise VideoError(f"{name}: {CODEC_OPTION} {codec}: this PyAV's FFmpeg has no encoder for it "
                         f"(looked for {', '.join(VIDEO_ENCODERS[codec])})")
    try:
        checked = check_crf(codec, crf)
    except SettingsError as error:
        raise VideoError(f"{name}: {error}") from None
    return EncoderChoice(codec, encoder, DEFAULT_CRF[codec] if checked is None else checked)


def encoder_options(choice: EncoderChoice, container_format: str) -> dict[str, str]:
    """The FFmpeg options of `choice`'s encoder writing into a container of the format (muxer) `container_format`."""
    return {"crf": f"{choice.crf:g}", **ENCODER_OPTIONS.get(choice.encoder, {}),
            **CONTAINER_ENCODER_OPTIONS.get((container_format, choice.encoder), {})}


def open_encoder(stream) -> None:
    """Open the PyAV output `stream`'s encoder, its own lines on stderr dropped (`cliplit.safety.native_lines`)."""
    with without_native_lines(ENCODER_LINE_PREFIXES):
        stream.codec_context.open(strict=False)


__all__ = ["EncoderChoice", "check_crf", "choose_encoder", "container_codecs", "encoder_name", "encoder_options", "open_encoder"]
