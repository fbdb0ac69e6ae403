"""Temporal stability of per-frame and stabilized enhancement on generated scenes (docs/video.md).

Usage (from the repository root):

    python bench/video_stability.py --model ../shared/reference/clip-lit/enhancement_model.pth \
        --photos ../shared/reference/clip-lit/images [--frames 24] [--size 192x256] [--weights 1 0.5 0.2 0.1] \
        [--mode exact|fast] [--denoise off|auto|S]

For each photo and scene (`cliplit.video.scenes`: pan, a bright region entering, exposure flicker,
noise, a scene cut) the script prints the warping error (`cliplit.video.stability`, x 1e4) of the
input, of the input brightened without flicker by the output's mean gain g (g^2 * input's: what a
stable enhancement would score), and of the output per frame (weight 1: `--temporal off`) and
smoothed with each weight (`--temporal on`), and the
PSNR of each smoothed output against the per-frame one (mean over frames). For each photo it then
prints how much the output changes when the network is given the pyramid context of a white frame
instead of its own (the largest effect a context can have), and a last block gives the means over photos.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

SCALE = 1e4  # warping errors are printed x 1e4 (mean squared error in [0, 1] units)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def load_photo(path: Path, width: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        height = round(image.height * width / image.width)
        return np.asarray(image.resize((width, height), Image.Resampling.LANCZOS), dtype=np.float32) / 255


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--photos", required=True, help="a folder of photos or one photo")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", default="192x256", help="HxW of the scenes")
    parser.add_argument("--weights", type=float, nargs="+", default=[1.0, 0.5, 0.2, 0.1],
                        help="smoothing weights of the newest frame (1: per frame)")
    parser.add_argument("--mode", default="exact", choices=("exact", "fast"))
    parser.add_argument("--denoise", default="off", help="the engine's --denoise setting (off, auto or S)")
    args = parser.parse_args(argv)

    from cliplit.engine.enhancer import Enhancer
    from cliplit.engine.runtime import configure_cpu
    from cliplit.imaging.codec import DecodedImage
    from cliplit.model.loading import load_network
    from cliplit.video.scenes import BRIGHT_LEVEL, PAN_PIXELS_PER_FRAME, SCENES, make_scene
    from cliplit.video.stability import motion, warping_error
    from cliplit.video.temporal import ContextSmoother, stabilized

    configure_cpu()
    height, width = (int(v) for v in args.size.split("x"))
    photos = sorted(Path(args.photos).glob("*.jpg")) if Path(args.photos).is_dir() else [Path(args.photos)]
    enhancer = Enhancer(load_network(args.model), mode=args.mode, denoise=args.denoise)
    print(f"{'photo':<14} {'scene':<17} {'input':>8} {'g2*input':>8} " + " ".join(f"{'w=' + format(w, 'g'):>8}" for w in args.weights)
          + "   " + " ".join(f"{'PSNR w=' + format(w, 'g'):>11}" for w in args.weights if w != 1))
    totals: dict[str, list] = {}
    for path in photos:
        photo = load_photo(path, max(2 * width, width + args.frames * PAN_PIXELS_PER_FRAME))
        if photo.shape[0] < height:
            print(f"{path.name}: shorter than {height} rows at this width, skipped", file=sys.stderr)
            continue
        for scene in SCENES:
            frames = make_scene(scene, photo, args.frames, height, width)
            pairs = motion(frames)
            errors, outputs = [warping_error(frames, pairs=pairs)], {}
            for weight in args.weights:
                engine = stabilized(enhancer, ContextSmoother(weight)) if weight != 1 else enhancer
                outputs[weight] = [engine.enhance_decoded(DecodedImage(f))[0].pixels for f in frames]
                errors.append(warping_error(outputs[weight], pairs=pairs))
            per_frame = outputs.get(1.0, outputs[args.weights[0]])
            gain = float(np.mean(per_frame)) / max(float(np.mean(frames)), 1e-6)
            errors.insert(1, gain ** 2 * errors[0])  # a flicker-free brightening by the same mean gain
            psnrs = [np.mean([min(psnr(a, b), 99.0) for a, b in zip(outputs[w], per_frame)]) for w in args.weights if w != 1]
            totals.setdefault(scene, []).append(errors + psnrs)
            print(f"{path.stem[:14]:<14} {scene:<17} " + " ".join(f"{e * SCALE:8.2f}" for e in errors)
                  + "   " + " ".join(f"{p:11.1f}" for p in psnrs), flush=True)
        still = np.ascontiguousarray(photo[:height, :width])
        swapped = ContextSmoother(weight=1e-9, cut_threshold=float("inf"))  # keeps the first frame's context
        engine = stabilized(enhancer, swapped)
        engine.enhance_decoded(DecodedImage(np.full_like(still, BRIGHT_LEVEL)))
        change = np.abs(engine.enhance_decoded(DecodedImage(still))[0].pixels - enhancer.enhance_decoded(DecodedImage(still))[0].pixels)
        print(f"{path.stem[:14]:<14} context of a white frame instead of its own: output changes by at most "
              f"{change.max() * 255:.2f} levels (mean {change.mean() * 255:.2f})", flush=True)
    for scene, rows in totals.items():
        mean = np.mean(rows, axis=0)
        count = len(args.weights) + 2
        print(f"{'mean':<14} {scene:<17} " + " ".join(f"{e * SCALE:8.2f}" for e in mean[:count])
              + "   " + " ".join(f"{p:11.1f}" for p in mean[count:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
