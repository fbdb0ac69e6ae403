"""The video options of `cliplit enhance` (argparse only: importing this module loads nothing heavy)."""

from __future__ import annotations

import argparse

from .settings import DEFAULT_CRF, DEFAULT_MAX_SECONDS, DEFAULT_VIDEO_CODEC, VIDEO_ENCODERS

STRIP_METADATA_OPTION = "--strip-metadata"


def add_video_options(parser: argparse.ArgumentParser, at_least) -> None:
    """Add the video options to `parser` (`at_least(minimum, meaning)`: the CLI's number parser).
    `--strip-metadata` is added only when the parser has none yet (images define it too)."""
    video = parser.add_argument_group("video (.mp4 .mov .m4v .mkv .webm .avi; docs/video.md)")
    video.add_argument("--video-codec", default=DEFAULT_VIDEO_CODEC, choices=tuple(VIDEO_ENCODERS),
                       help=f"encoder of the enhanced video stream (default {DEFAULT_VIDEO_CODEC}; audio, subtitles and data are copied)")
    video.add_argument("--video-crf", type=at_least(0, "0: lossless"), default=None, metavar="CRF",
                       help="constant-rate factor, lower is better (default: " +
                            ", ".join(f"{codec} {crf}" for codec, crf in DEFAULT_CRF.items()) + ")")
    video.add_argument("--max-duration", type=at_least(0.01, "the longest video read"), default=DEFAULT_MAX_SECONDS,
                       metavar="SECONDS", help=f"refuse longer videos, from their header (default {DEFAULT_MAX_SECONDS:g})")
    if STRIP_METADATA_OPTION not in parser._option_string_actions:
        video.add_argument(STRIP_METADATA_OPTION, action="store_true",
                           help="do not copy metadata (creation time, location, tags) into the outputs")


__all__ = ["STRIP_METADATA_OPTION", "add_video_options"]
