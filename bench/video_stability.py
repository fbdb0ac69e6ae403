"""Temporal stability of the per-frame enhancement on generated scenes (docs/video.md).

Usage (from the repository root):

    python bench/video_stability.py --model ../shared/reference/clip-lit/enhancement_model.pth \
        --photos ../shared/reference/clip-lit/images [--frames 24] [--size 192x256] \
        [--mode exact|fast] [--denoise off|auto|S ...]

For each photo and scene (`cliplit.video.scenes`: pan, a bright region entering, exposure flicker,
noise, a scene cut) the script prints the warping error (`cliplit.video.stability`, x 1e4) of the
input, of the input brightened without flicker by the output's mean gain g (g^2 * input's: what a
stable enhancement would score), and of the output enhanced frame by frame with each `--denoise`
setting; a last block gives the means over photos.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

SCALE = 1e4  # warping errors are printed x 1e4 (mean squared error in [0, 1] units)


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
    parser.add_argument("--mode", default="exact", choices=("exact", "fast"))
    parser.add_argument("--denoise", nargs="+", default=["off"], help="the engine's --denoise settings to compare (off, auto or S)")
    args = parser.parse_args(argv)

    from cliplit.engine.enhancer import Enhancer
    from cliplit.engine.runtime import configure_cpu
    from cliplit.imaging.codec import DecodedImage
    from cliplit.model.loading import load_network
    from cliplit.video.scenes import PAN_PIXELS_PER_FRAME, SCENES, make_scene
    from cliplit.video.stability import motion, warping_error

    configure_cpu()
    height, width = (int(v) for v in args.size.split("x"))
    photos = sorted(Path(args.photos).glob("*.jpg")) if Path(args.photos).is_dir() else [Path(args.photos)]
    network = load_network(args.model)
    engines = {setting: Enhancer(network, mode=args.mode, denoise=setting) for setting in args.denoise}
    print(f"{'photo':<14} {'scene':<17} {'input':>8} {'g2*input':>8} " + " ".join(f"{'dn=' + s:>8}" for s in engines))
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
            for setting, engine in engines.items():
                outputs[setting] = [engine.enhance_decoded(DecodedImage(f))[0].pixels for f in frames]
                errors.append(warping_error(outputs[setting], pairs=pairs))
            first = outputs[args.denoise[0]]
            gain = float(np.mean(first)) / max(float(np.mean(frames)), 1e-6)
            errors.insert(1, gain ** 2 * errors[0])  # a flicker-free brightening by the same mean gain
            totals.setdefault(scene, []).append(errors)
            print(f"{path.stem[:14]:<14} {scene:<17} " + " ".join(f"{e * SCALE:8.2f}" for e in errors), flush=True)
    for scene, rows in totals.items():
        print(f"{'mean':<14} {scene:<17} " + " ".join(f"{e * SCALE:8.2f}" for e in np.mean(rows, axis=0)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
