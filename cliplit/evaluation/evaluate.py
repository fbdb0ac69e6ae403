"""`cliplit evaluate`: score enhanced images against targets, for models and for other methods' outputs.

Inputs are matched to targets (and to each `--predictions` folder's outputs) by file stem. Every model
runs through the inference engine with the same settings as `cliplit enhance`, and is scored on the
8-bit (or 16-bit) image that `enhance` would save; each target is read once, each model built once.
A missing, unreadable or differently sized target or prediction is one line, and that image is left
out of that method's means (and counted), while the rest go on.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CLIPLITError, display_name, first_line
from ..imaging.codec import encode_array, quantize
from ..imaging.files import image_extensions, read_image
from ..safety.outputs import write_text_atomically
from ..safety.reading import walk_files
from .metrics import FID, LPIPS, ImageTooSmall, MetricUnavailable, psnr, ssim

PER_IMAGE_FILE = "per_image.csv"
SUMMARY_FILE = "summary.json"


@dataclass
class Method:
    """A row of the table: a model run by `enhance(decoded) -> DecodedImage`, or a folder of outputs."""

    name: str
    enhance: Callable | None = None
    predictions: dict[str, Path] | None = None


@dataclass
class Scores:
    """Per-image values of one method, and the images left out with their reasons."""

    values: dict[str, dict[str, float]] = field(default_factory=dict)  # image -> metric -> value
    left_out: list[str] = field(default_factory=list)


class StemIndex(dict):
    """Image files by stem; `ambiguous` holds the stems that several files share (with all of them)."""

    def __init__(self, files: list[Path]):
        super().__init__()
        self.ambiguous: dict[str, list[Path]] = {}
        for path in files:
            if path.stem in self:
                self.ambiguous.setdefault(path.stem, [self[path.stem]]).append(path)
            else:
                self[path.stem] = path


def index_by_stem(folder: Path, what: str) -> StemIndex:
    """The image files of `folder` by stem (an error when the folder is missing); shared stems are recorded."""
    if not folder.is_dir():
        raise CLIPLITError(f"{display_name(folder)}: {what} folder not found")
    extensions = image_extensions()
    return StemIndex([p for p in walk_files(folder, recursive=False) if p.suffix.lower() in extensions])


def image_keys(inputs: list[Path]) -> dict[Path, str]:
    """The name of each input in the reports: its file name, or its path where file names collide."""
    counts: dict[str, int] = {}
    for path in inputs:
        counts[path.name] = counts.get(path.name, 0) + 1
    return {path: display_name(path.name if counts[path.name] == 1 else path) for path in inputs}


def _matching(index: dict[str, Path], source: Path, whose: str) -> Path:
    """The file of `index` matching `source` by stem; one line when there is none, or several."""
    shared = getattr(index, "ambiguous", {}).get(source.stem)
    if shared:
        names = ", ".join(display_name(p) for p in shared)
        raise CLIPLITError(f"{display_name(source)}: ambiguous {whose}: {names} share the stem {source.stem!r} "
                           "(keep one of them)")
    if source.stem not in index:
        raise CLIPLITError(f"{display_name(source)}: no {whose} with the stem {source.stem!r}")
    return index[source.stem]


def same_depth(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both images at 8 bits unless both are 16-bit (then scores use 65535 as the data range)."""
    if first.dtype == second.dtype:
        return first, second
    to_eight = lambda a: a if a.dtype == np.uint8 else quantize(a.astype(np.float32) / 65535, 8)  # noqa: E731
    return to_eight(first), to_eight(second)


def codes_of(path: Path, max_megapixels: float | None) -> np.ndarray:
    return encode_array(read_image(path, max_megapixels=max_megapixels))


def evaluate(
    inputs: list[Path],
    targets: dict[str, Path],
    methods: list[Method],
    metrics: list[str],
    report: Callable[[str], None],
    device="cpu",
    max_megapixels: float | None = None,
    progress: Callable | None = None,
    keys: dict[Path, str] | None = None,
) -> tuple[dict[str, Scores], dict[str, float]]:
    """
    Score every method on every input. Returns (scores per method, set-level metrics per method: FID).
    `report` receives one-line messages ("error: ..." for left-out images, "note: ..." for a metric that
    cannot run here, or an image too small for one); `progress` wraps the input iteration; `keys` names
    each input in the scores (default `image_keys(inputs)`: file names, paths where they collide).
    """
    keys = keys or image_keys(inputs)
    scorers: dict[str, Callable] = {"psnr": psnr, "ssim": ssim}
    fids: dict[str, FID] = {}
    if "lpips" in metrics:
        try:
            scorers["lpips"] = LPIPS(device)
        except MetricUnavailable as error:
            report(f"note: {error}")  # the other metrics still run
    if "fid" in metrics:
        try:
            fids = {method.name: FID(device) for method in methods}
        except MetricUnavailable as error:
            report(f"note: {error}")
    wanted = [m for m in metrics if m in scorers]
    scores = {method.name: Scores() for method in methods}
    for source in (progress or (lambda items: items))(inputs):
        name = keys[source]
        try:
            target_path = _matching(targets, source, "target")
            target = codes_of(target_path, max_megapixels)
            decoded = read_image(source, max_megapixels=max_megapixels) if any(m.enhance for m in methods) else None
        except CLIPLITError as error:
            report(f"error: {error}")
            for method in methods:
                scores[method.name].left_out.append(name)
            continue
        for method in methods:
            try:
                if method.enhance is not None:
                    output = encode_array(method.enhance(decoded))
                else:
                    output = codes_of(_matching(method.predictions, source, f"output of {method.name}"), max_megapixels)
                if output.shape[:2] != target.shape[:2]:
                    raise CLIPLITError(f"{display_name(target_path)}: target is {target.shape[1]} x {target.shape[0]}, "
                                       f"{method.name}'s output {output.shape[1]} x {output.shape[0]}")
            except CLIPLITError as error:
                report(f"error: {error}")
                scores[method.name].left_out.append(name)
                continue
            except (RuntimeError, ValueError, MemoryError) as error:  # e.g. an image too small for the network
                report(f"error: {display_name(source)}: {method.name}: enhancement failed: {first_line(error)}")
                scores[method.name].left_out.append(name)
                continue
            output, reference = same_depth(output, target)
            values = {}
            for metric in wanted:
                try:
                    values[metric] = scorers[metric](output, reference)
                except ImageTooSmall as error:  # the other metrics of this image still count
                    report(f"note: {display_name(source)}: {metric} skipped: {error}")
            scores[method.name].values[name] = values
            if method.name in fids:
                fids[method.name].add(output, reference)
    set_level = {}
    for method_name, fid in fids.items():
        try:
            set_level[method_name] = fid.compute()
        except (RuntimeError, ValueError) as error:
            report(f"error: fid: {method_name}: {error}")
    return scores, set_level


def mean_of(values: list[float]) -> tuple[float | None, int]:
    """(mean over the finite values, how many infinite values were left out: identical images' PSNR);
    the mean is None (JSON null) when no value is finite."""
    finite = [v for v in values if math.isfinite(v)]
    return (sum(finite) / len(finite) if finite else None), len(values) - len(finite)


def summarize(scores: dict[str, Scores], set_level: dict[str, float], metrics: list[str]) -> dict:
    summary = {}
    for method, result in scores.items():
        entry = {"images": len(result.values), "left_out": result.left_out}
        for metric in metrics:
            if metric == "fid":
                if method in set_level:
                    entry["fid"] = set_level[method] if math.isfinite(set_level[method]) else None
                continue
            values = [v[metric] for v in result.values.values() if metric in v]
            if values:
                entry[metric], infinite = mean_of(values)
                if infinite:
                    entry[f"{metric}_infinite_left_out"] = infinite
        summary[method] = entry
    return summary


def table(summary: dict, metrics: list[str]) -> str:
    """The summary as a text table: one row per method, one column per metric, and the image count."""
    shown = [m for m in metrics if any(m in entry for entry in summary.values())]
    width = max([len("method")] + [len(name) for name in summary])
    lines = [f"{'method':<{width}}  " + "  ".join(f"{m:>8}" for m in shown) + "  images"]
    for name, entry in summary.items():
        cells = [f"{entry[m]:8.4f}" if entry.get(m) is not None else f"{'inf' if m in entry else '-':>8}" for m in shown]
        left = f" ({len(entry['left_out'])} left out)" if entry["left_out"] else ""
        lines.append(f"{name:<{width}}  " + "  ".join(cells) + f"  {entry['images']:>6}{left}")
    return "\n".join(lines)


def write_reports(output_dir: Path, scores: dict[str, Scores], summary: dict, metrics: list[str]) -> None:
    """
    `per_image.csv` (method,image,<metric>...; an identical image's PSNR is `inf`) and `summary.json`
    (strict JSON: a mean without finite values is null, `<metric>_infinite_left_out` counts them) in
    `output_dir`, each written atomically.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    per_image = [m for m in metrics if m != "fid"]
    rows = io.StringIO(newline="")
    writer = csv.writer(rows)
    writer.writerow(["method", "image", *per_image])
    for method, result in scores.items():
        for image, values in result.values.items():
            writer.writerow([method, image, *(repr(values[m]) if m in values else "" for m in per_image)])
    write_text_atomically(output_dir / PER_IMAGE_FILE, rows.getvalue())
    write_text_atomically(output_dir / SUMMARY_FILE, json.dumps(summary, indent=1, allow_nan=False) + "\n")


__all__ = ["Method", "Scores", "StemIndex", "evaluate", "image_keys", "index_by_stem", "summarize", "table", "write_reports"]
