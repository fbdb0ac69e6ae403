"""What `--denoise` found and did to an image, in one line for the user: the CLI's `note:` lines (not with
`-q`), the app's status under the result, a video's summary over its scenes.

    note: scene.png: --denoise auto: JPEG history q≈75 found in a PNG (8x8 grid at (5, 5): a crop):
          deblocked with its tables, 4:2:0 chroma rebuilt; noise 0.2 levels measured in the shadows: no noise filter

`auto` never changes an image without such a line: an image it leaves as it is has no plan (None).
"""

from __future__ import annotations

from ..imaging.jpeg import JPEG_BLOCK
from .denoise import LEVELS, DenoisePlan


def describe(plan: DenoisePlan, container: str | None = None) -> str:
    """
    What `plan` (a `DenoisePlan`, as an enhanced image's `denoised`) did, without the image's name;
    `container`: the format of the file it was read from ("PNG", "WEBP", ...; None: pixels given as such).
    """
    parts = []
    jpeg = plan.jpeg
    if jpeg is not None:
        chroma = ", 4:2:0 chroma rebuilt" if jpeg.chroma_table is not None else ""
        if plan.history is not None:
            where = f"in a {container}" if container else "in the pixels"
            row, col = (start % JPEG_BLOCK for start in jpeg.origin)
            crop = f" (8x8 grid at ({row}, {col}): a crop)" if (row, col) != (0, 0) else ""
            quality = f"q≈{plan.history.quality}" if plan.history.quality is not None else "(its own tables)"
            parts.append(f"JPEG history {quality} found {where}{crop}: deblocked with its tables{chroma}")
        else:
            parts.append(f"deblocked with the JPEG file's tables{chroma}")
    level = plan.level
    sigma = plan.sigma * LEVELS
    if level is None:
        parts.append(f"filtered at the given {sigma:g} levels" if sigma > 0 else "no noise filter (level 0 given)")
    else:
        measured = f"noise {level.measured:.1f} levels measured in the shadows"
        if level.codec:
            parts.append(f"{measured}; chroma subsampled by a codec (WebP, AVIF, HEIC, video): filtered at {sigma:.1f} levels")
        elif sigma > 0:
            parts.append(f"{measured}: filtered at that level")
        else:
            parts.append(f"{measured}: no noise filter")
    return "; ".join(parts)


def denoise_note(name: str, setting, plan: DenoisePlan | None, container: str | None = None) -> str | None:
    """The `note:` text for image `name` enhanced with `--denoise setting`: None when nothing was changed."""
    if plan is None:
        return None
    shown = setting if isinstance(setting, str) else f"{setting:g}"
    return f"{name}: --denoise {shown}: {describe(plan, container)}"


def container_of(path) -> str | None:
    """The format name a note gives the file `path` ("PNG" for x.png), from its suffix; None without one."""
    from pathlib import Path

    suffix = Path(path).suffix.lstrip(".").upper()
    return {"JPG": "JPEG", "TIF": "TIFF", "HEIF": "HEIC"}.get(suffix, suffix) or None


__all__ = ["container_of", "denoise_note", "describe"]
