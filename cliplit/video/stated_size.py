"""How many bytes a video file's own structure says it holds, to find a truncated file before it is decoded.

FFmpeg's demuxers end a cut file quietly at its last whole packet, and what is lost there need not be at
the end of the timeline: a video's packets are stored in decode order, so a cut can take the B-frames
shown before the last P-frame, leaving a hole in the middle that no check of the frames' times can see.
The containers state their own extent, and that is what is compared with the file's size:

- Matroska and WebM: the EBML header, then one Segment element whose size field covers the rest (a live
  recording writes "unknown size": nothing is stated);
- MP4, MOV and the other ISO base media files: the top-level boxes (`ftyp`, `moov`, `mdat`, ...), each with
  its size (a box of size 0 runs to the end of the file).
"""

from __future__ import annotations

import os

MATROSKA_MAGIC = b"\x1a\x45\xdf\xa3"
MATROSKA_SEGMENT_ID = b"\x18\x53\x80\x67"
MATROSKA_HEAD_BYTES = 4096  # the EBML header (tens of bytes) and the Segment's size are within these
ISO_BOX_TYPES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid"}  # a file starting with one
# The top-level boxes of MP4, MOV and fragmented MP4: bytes after the last of them that are not one (a trailer
# some tools append) end the structure, and are no box the file was cut in
ISO_TOP_LEVEL_BOXES = ISO_BOX_TYPES | {b"moof", b"mfra", b"styp", b"sidx", b"ssix", b"meta", b"emsg", b"prft", b"pdin"}
ISO_HEADER_BYTES, ISO_LARGE_HEADER_BYTES = 8, 16
MAX_TOP_LEVEL_BOXES = 4096  # a real file has a handful; a crafted one stops being read here


def _element_size(data: bytes, offset: int) -> tuple[int | None, int] | None:
    """An EBML variable-length size at `offset`: (its value, None for "unknown", and its length in bytes), or None."""
    if offset >= len(data) or data[offset] == 0:
        return None
    length = 9 - data[offset].bit_length()  # the leading zero bits of the first byte, plus one
    if offset + length > len(data):
        return None
    value = int.from_bytes(data[offset : offset + length], "big") & ((1 << (7 * length)) - 1)
    return (None if value == (1 << (7 * length)) - 1 else value), length


def _matroska_size(head: bytes) -> int | None:
    header = _element_size(head, len(MATROSKA_MAGIC))
    if header is None or header[0] is None:
        return None
    segment_at = len(MATROSKA_MAGIC) + header[1] + header[0]
    if head[segment_at : segment_at + len(MATROSKA_SEGMENT_ID)] != MATROSKA_SEGMENT_ID:
        return None
    segment = _element_size(head, segment_at + len(MATROSKA_SEGMENT_ID))
    if segment is None or segment[0] is None:
        return None
    return segment_at + len(MATROSKA_SEGMENT_ID) + segment[1] + segment[0]


def _iso_size(file, file_size: int) -> int | None:
    offset = 0
    for _ in range(MAX_TOP_LEVEL_BOXES):
        if offset >= file_size:
            return offset
        file.seek(offset)
        header = file.read(ISO_LARGE_HEADER_BYTES)
        if len(header) < ISO_HEADER_BYTES or header[4:8] not in ISO_TOP_LEVEL_BOXES:
            return offset  # the boxes end here; what follows (if anything) is a trailer, not a box
        size = int.from_bytes(header[:4], "big")
        if size == 0:  # the last box, to the end of the file
            return None
        if size == 1:
            if len(header) < ISO_LARGE_HEADER_BYTES:
                return offset + ISO_LARGE_HEADER_BYTES
            size = int.from_bytes(header[8:16], "big")
        if size < ISO_HEADER_BYTES:
            return None  # not a box: FFmpeg judges the file
        offset += size
    return None


def stated_size(path: str | os.PathLike) -> int | None:
    """The bytes `path`'s container structure says it holds (Matroska/WebM, ISO base media: MP4, MOV, M4V),
    or None where it states none (another container, a live recording, a structure that is not one) or the file
    cannot be read (FFmpeg then says why)."""
    try:
        return _stated_size(path)
    except OSError:
        return None


def _stated_size(path: str | os.PathLike) -> int | None:
    with open(path, "rb") as file:
        head = file.read(MATROSKA_HEAD_BYTES)
        if head.startswith(MATROSKA_MAGIC):
            return _matroska_size(head)
        if len(head) >= ISO_HEADER_BYTES and head[4:8] in ISO_BOX_TYPES:
            return _iso_size(file, os.fstat(file.fileno()).st_size)
    return None


__all__ = ["stated_size"]
