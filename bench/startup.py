"""Start-up cost of the `cliplit` command, as a user pays it: whole processes, wall-clock time.

Usage (from the repository root):

    python bench/startup.py --model ../shared/reference/clip-lit/enhancement_model.pth [--image photo.jpg] [--repeat 5]

`--model` is converted once into a temporary `from_pretrained` folder (what the default model's cache
holds), so that the enhancement row measures a normal run, not the one-time conversion. Without
`--image`, a 0.5 MP photo is made from `examples/backlit_cat.jpg`. Each command runs `--repeat` times;
the best time is printed (a shared machine's noise only ever adds time), next to
`python -c "import torch"` and the ratio to it.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "examples" / "backlit_cat.jpg"
HALF_MEGAPIXEL = (864, 576)


def best_seconds(command: list[str], repeat: int, env: dict) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"error: {' '.join(command)} failed: {done.stderr.strip().splitlines()[-1:]}")
        best = min(best, elapsed)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="authors' .pth file or from_pretrained folder")
    parser.add_argument("--image", default=None, help="photo to enhance (default: a 0.5 MP photo made from the examples)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # before transformers loads: no bar on stderr
    from PIL import Image

    from cliplit.model.conversion import convert_checkpoint

    env = {**os.environ}
    cliplit = [sys.executable, "-m", "cliplit"]
    with tempfile.TemporaryDirectory(prefix="cliplit-startup-") as scratch:
        scratch = Path(scratch)
        model = Path(args.model)
        if model.is_file():
            model = convert_checkpoint(model, scratch / "model")
        image = Path(args.image) if args.image else scratch / "photo.jpg"
        if not args.image:
            with Image.open(EXAMPLE) as example:
                example.convert("RGB").resize(HALF_MEGAPIXEL, Image.LANCZOS).save(image, quality=90)
        with Image.open(image) as photo:
            megapixels = photo.width * photo.height / 1e6
        rows = [
            ('python -c "import torch"', [sys.executable, "-c", "import torch"]),
            ('python -c "import cliplit"', [sys.executable, "-c", "import cliplit"]),
            ("cliplit --help", cliplit + ["--help"]),
            ("cliplit enhance --help", cliplit + ["enhance", "--help"]),
            ("cliplit models", cliplit + ["models"]),
            (f"cliplit enhance ({megapixels:.2f} MP, --mode fast)",
             cliplit + ["enhance", str(image), "--model", str(model), "--mode", "fast", "-o", str(scratch / "out"),
                        "--overwrite", "--quiet", "--device", "cpu"]),
            (f"cliplit enhance ({megapixels:.2f} MP, exact)",
             cliplit + ["enhance", str(image), "--model", str(model), "-o", str(scratch / "out"),
                        "--overwrite", "--quiet", "--device", "cpu"]),
        ]
        import torch

        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
              f"Python {platform.python_version()}, torch {torch.__version__}; best of {args.repeat}")
        baseline = None
        for label, command in rows:
            seconds = best_seconds(command, args.repeat, env)
            baseline = baseline or seconds
            print(f"{label:<44} {seconds:6.2f} s   {seconds / baseline:5.2f}x import torch")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
