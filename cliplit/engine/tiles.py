"""Tile geometry: which pixels each exact tile produces and which it reads.

A tile's core (the output pixels it produces) is read with a margin of real neighbours on its inner
sides: the receptive radius of what runs on it (the encoder's, 5 pixels for the published network, for
the pooling pass; encoder + decoder, 5 + 12 = 17, for the output pass). A tile's input box touches the
image border exactly where its core does, so the network's reflection (and the fuse convolution's zero)
padding sees the same pixels as in the whole image; on inner sides the padding only disturbs the halo
pixels that are cropped away. Every tile of an image has one input size, so a compiled network is
compiled once; cores are balanced per axis (`balanced_tile`) so that no nearly empty edge tile costs a
whole tile's work.
"""

from __future__ import annotations

from dataclasses import dataclass

from .pyramid import Box


@dataclass(frozen=True)
class Tile:
    """The core box a tile produces, and the larger input box it reads (core + real neighbours)."""

    core: Box
    input: Box


def axis_spans(size: int, tile: int, margin: int) -> list[tuple[int, int, int, int]]:
    """
    Split [0, size) into cores of at most `tile` pixels. Returns (core_start, core_stop, input_start,
    input_stop) for each: the input span has `margin` real neighbours on each inner side and the same
    length min(tile + 2 * margin, size) for every core, so all tiles have one shape.
    """
    if tile < 1:
        raise ValueError(f"tile size must be positive, got {tile}")
    length = min(tile + 2 * margin, size)
    spans = []
    for start in range(0, size, tile):
        stop = min(start + tile, size)
        input_start = min(max(start - margin, 0), size - length)
        spans.append((start, stop, input_start, input_start + length))
    return spans


def balanced_tile(size: int, tile: int) -> int:
    """
    The core size that splits `size` into as few cores of at most `tile` as `tile` does, all of nearly
    equal size: 4000 px in tiles of 992 gives 5 cores of 800, not 4 of 992 and a fifth of 32 px, which
    would cost a whole tile (every tile of an axis has one input length) for 32 rows.
    """
    return -(-size // -(-size // tile))


def plan_tiles(height: int, width: int, tile: int, margin: int, balanced: bool = True) -> list[Tile]:
    """
    Tiles (row-major) covering a height x width image with cores of at most tile x tile pixels, of
    nearly equal size per axis when `balanced` (else `tile` exactly, and one tile shape for every image:
    what a compiled runtime wants).
    """
    tile_h, tile_w = (balanced_tile(height, tile), balanced_tile(width, tile)) if balanced else (tile, tile)
    return [
        Tile(Box(r0, c0, r1, c1), Box(ir0, ic0, ir1, ic1))
        for r0, r1, ir0, ir1 in axis_spans(height, tile_h, margin)
        for c0, c1, ic0, ic1 in axis_spans(width, tile_w, margin)
    ]


__all__ = ["Tile", "axis_spans", "balanced_tile", "plan_tiles"]
