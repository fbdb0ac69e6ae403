"""Throughput and peak memory of cliplit's inference modes, against a plain eager fp32 NCHW evaluation.

Usage (from the repository root):

    python bench/benchmark.py --model ../shared/reference/clip-lit/enhancement_model.pth \
        --images ../shared/reference/clip-lit/images [--modes baseline exact tiled fast] [--large 4000x6000]

Every mode runs in its own subprocess, so that its peak memory (CPU: peak resident set size of the
process, which includes Python, PyTorch and the decoded images; CUDA: `torch.cuda.max_memory_allocated`)
is its own. For each mode the script prints megapixels per second, seconds per image, peak memory,
the throughput ratio against `baseline` measured in the same run, and the fidelity of its 8-bit
output against the baseline's (largest difference in levels, PSNR).

Modes:
  baseline  model.estimate_illumination on an NCHW fp32 tensor under torch.no_grad (the published network, plainly;
            same thread count, none of cliplit's process settings)
  exact     cliplit exact mode, default settings (channels-last, inference mode, oneDNN; whole image when it fits)
  compiled  exact mode with torch.compile (inductor, frozen weights); tiles of --tile-size so that it compiles once
            (compile time is reported apart and excluded from the throughput)
  tiled     exact mode in tiles of --tile-size
  fast      fast mode (scale-matched network at 1/4 resolution, bicubic upsampling)
  fast@F    fast mode at 1/F resolution (for example fast@3, fast@6)
  fp16/bf16 exact mode in half precision (for CUDA)
  large     exact mode (automatic tiles) on one synthetic --large image (the first photo resized), memory check
  onnxruntime  the network exported by `cliplit export`, run by ONNX Runtime (CPU, all graph optimizations)
  cli       one whole `cliplit enhance` process on the first photo: start-up, loading, decoding, encoding included
  cli-batch one whole `cliplit enhance` process on all the photos (a batch)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cliplit.engine.settings import FAST_DOWNSCALE
from cliplit.imaging.codec import EIGHT_BIT_MAX

DEFAULT_MODES = ("baseline", "exact", "tiled", "fast")
WARMUP_SIZE = 256  # side of the untimed warm-up image
HALF_MODES = ("fp16", "bf16")
ONNX_MODE = "onnxruntime"  # the exported ONNX file under ONNX Runtime (CPU), all graph optimizations
CLI_MODE, CLI_BATCH_MODE = "cli", "cli-batch"  # whole `cliplit enhance` processes: the user's time
FAST_AT = "fast@"  # fast@F: fast mode with downscaling factor F
DEFAULT_TILE_SIZE = 512
BYTES_PER_GIB = 1 << 30
KIB = 1024


def load_images(folder: Path) -> list[tuple[str, np.ndarray]]:
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise SystemExit(f"error: {folder}: no .jpg/.png images")
    return [(p.stem, np.asarray(Image.open(p).convert("RGB"))) for p in files]


def large_image(images, size: str) -> list[tuple[str, np.ndarray]]:
    import cv2

    height, width = (int(v) for v in size.lower().split("x"))
    _, first = images[0]
    if first.shape[0] > first.shape[1] and height < width or first.shape[0] < first.shape[1] and height > width:
        height, width = width, height
    return [(f"large_{height}x{width}", cv2.resize(first, (width, height), interpolation=cv2.INTER_CUBIC))]


def quantize(tensor) -> np.ndarray:
    """(1, 3, H, W) float in [0, 1] -> (H, W, 3) uint8, as the authors save it: floor(x * 255 + 0.5)."""
    from cliplit.imaging.codec import quantize as quantize_codes

    return quantize_codes(tensor[0], 8).permute(1, 2, 0).cpu().numpy()


def peak_memory_bytes(device) -> int:
    import torch

    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KIB  # Linux: kilobytes


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


class onnx_engine:
    """The network exported by `cliplit export`, run by ONNX Runtime with all graph optimizations."""

    def __init__(self, model, path: Path, threads: int):
        import onnxruntime

        from cliplit.engine.onnx_export import export_onnx

        export_onnx(model, path)
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def illumination(self, pixels):
        import torch

        return torch.from_numpy(self.session.run(["illumination"], {"pixel_values": pixels.cpu().numpy()})[0])


def cli_worker(args, mode: str) -> None:
    """The user's time: one whole `cliplit enhance` process (start-up, model loading, decoding, encoding
    included) on the first photo (`cli`) or on all of them (`cli-batch`); the seconds of each image are
    the process's, shared out by megapixels."""
    from PIL import Image

    from cliplit.model.conversion import convert_checkpoint

    files = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    files = files[:1] if mode == CLI_MODE else files
    folder = Path(args.output_dir) / f"{mode}-model"
    if not folder.is_dir():
        convert_checkpoint(args.model, folder)  # a converted folder, as the default model's cache holds
    output = Path(args.output_dir) / f"{mode}-out"
    command = [sys.executable, "-m", "cliplit", "enhance", *map(str, files), "--model", str(folder), "-o", str(output),
               "--overwrite", "--quiet", "--device", args.device]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    images, sizes = [], []
    for path in files:
        with Image.open(output / f"{path.stem}.png") as enhanced:
            array = np.asarray(enhanced.convert("RGB"))
        np.save(Path(args.output_dir) / f"{mode}_{path.stem}.npy", array)
        sizes.append(array.shape[0] * array.shape[1] / 1e6)
        images.append({"image": path.stem, "megapixels": sizes[-1]})
    for item in images:
        item["seconds"] = seconds * item["megapixels"] / sum(sizes)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * KIB
    print(json.dumps({"mode": mode, "threads": 0, "device": args.device, "images": images, "peak_bytes": peak,
                      "compile_seconds": 0.0}))


def worker(args) -> None:
    """Run one mode over the images in this process; print one JSON line with the timings and write the outputs."""
    import torch

    from cliplit.engine.enhancer import Enhancer
    from cliplit.engine.runtime import configure_cpu, physical_cores, resolve_device
    from cliplit.model.conversion import network_from_author_checkpoint
    from cliplit.model.network import apply_illumination

    mode = args.worker
    if mode in (CLI_MODE, CLI_BATCH_MODE):
        return cli_worker(args, mode)
    if mode == "baseline":  # plain PyTorch: only the same thread count, no other process setting
        threads = args.threads or physical_cores()
        torch.set_num_threads(threads)
    else:
        threads = configure_cpu(args.threads)
    device = resolve_device(args.device)
    images = load_images(Path(args.images))
    if mode == "large":
        images = large_image(images, args.large)
    model = network_from_author_checkpoint(args.model).to(device)

    engine, compile_seconds = None, 0.0
    if mode in ("exact", "large"):
        engine = Enhancer(model)
    elif mode == "tiled":
        engine = Enhancer(model, tile_size=args.tile_size)
    elif mode == "compiled":
        engine = Enhancer(model, compile=True, tile_size=args.tile_size)
        warm = torch.rand(1, 3, args.tile_size * 2, args.tile_size * 2, device=device)
        start = time.perf_counter()
        engine.illumination(warm)  # compiles the tile shapes
        synchronize(device)
        compile_seconds = time.perf_counter() - start
    elif mode == "fast" or mode.startswith(FAST_AT):
        downscale = float(mode[len(FAST_AT):]) if mode.startswith(FAST_AT) else FAST_DOWNSCALE
        engine = Enhancer(model, mode="fast", fast_downscale=downscale)
    elif mode in HALF_MODES:
        engine = Enhancer(model, precision=mode)
    elif mode == ONNX_MODE:
        engine = onnx_engine(model, Path(args.output_dir) / "model.onnx", threads)
    # One untimed pass on a small image, for every mode alike: one-time costs (oneDNN primitive
    # creation, allocator growth, CUDA context) are not throughput.
    warm_pixels = torch.rand(1, 3, WARMUP_SIZE, WARMUP_SIZE, device=device)
    if mode == "baseline":
        with torch.no_grad():
            model.estimate_illumination(warm_pixels)
    else:
        engine.illumination(warm_pixels)
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    results = []
    for stem, array in images:
        pixels = torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0).float().div_(EIGHT_BIT_MAX).to(device)
        synchronize(device)
        start = time.perf_counter()
        if mode == "baseline":
            with torch.no_grad():
                illumination = model.estimate_illumination(pixels)
        else:
            illumination = engine.illumination(pixels)
        with torch.inference_mode():
            enhanced = apply_illumination(pixels, illumination)
        synchronize(device)
        seconds = time.perf_counter() - start
        output = quantize(enhanced)
        np.save(Path(args.output_dir) / f"{mode}_{stem}.npy", output)
        results.append({"image": stem, "megapixels": array.shape[0] * array.shape[1] / 1e6, "seconds": seconds})
        del pixels, illumination, enhanced
    print(json.dumps({"mode": mode, "threads": threads, "device": str(device), "images": results,
                      "peak_bytes": peak_memory_bytes(device), "compile_seconds": compile_seconds}))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(EIGHT_BIT_MAX**2 / mse)


def machine_description(device: str) -> str:
    import torch

    cpu = platform.processor() or "cpu"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        cpu = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    except StopIteration:
        pass
    text = f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__}"
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="authors' .pth checkpoint")
    parser.add_argument("--images", required=True, help="folder of .jpg/.png photos")
    parser.add_argument("--modes", nargs="+", default=None, help=f"default: {' '.join(DEFAULT_MODES)} (+ fp16 bf16 on CUDA)")
    parser.add_argument("--tile-size", type=int, default=DEFAULT_TILE_SIZE, help="tile size of the tiled/compiled modes")
    parser.add_argument("--large", default="4000x6000", help="size HxW of the synthetic image of the 'large' mode")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: physical cores)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds: all modes run once per round, in turn, and each image keeps its best time "
                             "(on a shared or throttled machine the speed drifts by tens of percent over minutes)")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--output-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0

    import torch

    on_cuda = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
    modes = args.modes or list(DEFAULT_MODES) + (list(HALF_MODES) if on_cuda else [])
    if "baseline" in modes:
        modes = ["baseline"] + [m for m in modes if m != "baseline"]
    print(f"machine: {machine_description(args.device)}; Python {platform.python_version()}, numpy {np.__version__}")
    print(f"command: python {' '.join(sys.argv)}")
    records = {}
    with tempfile.TemporaryDirectory(prefix="cliplit-bench-") as output_dir:
        for _ in range(args.repeat):
            for mode in modes:
                record = _run_worker(args, mode, output_dir)
                if record is None:
                    continue
                records[mode] = _best_of(records.get(mode), record)
        for mode in modes:
            if mode not in records:
                continue
            record = records[mode]
            reference = "fp32" if mode in HALF_MODES else "baseline"
            record["fidelity"] = []
            for item in record["images"]:
                ours = np.load(Path(output_dir) / f"{mode}_{item['image']}.npy")
                base_path = Path(output_dir) / f"{'exact' if reference == 'fp32' else 'baseline'}_{item['image']}.npy"
                if base_path.is_file():
                    base = np.load(base_path)
                    diff = int(np.abs(ours.astype(np.int16) - base.astype(np.int16)).max())
                    record["fidelity"].append({"image": item["image"], "max_level_diff": diff, "psnr_db": psnr(ours, base)})
            _print_row(mode, record, records.get("baseline"))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine_description(args.device), "records": records}, indent=2))
    return 0


def _run_worker(args, mode: str, output_dir: str):
    """Run one mode in its own process; its JSON record, or None (failure printed)."""
    command = [sys.executable, __file__, "--worker", mode, "--output-dir", output_dir, "--model", args.model,
               "--images", args.images, "--tile-size", str(args.tile_size), "--large", args.large, "--device", args.device]
    if args.threads:
        command += ["--threads", str(args.threads)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        tail = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"{mode}: failed: {tail}", flush=True)
        return None
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _best_of(kept, record):
    """Merge two runs of one mode: per image the shorter time (noise only ever slows a run), the larger peak."""
    if kept is None:
        return record
    for old, new in zip(kept["images"], record["images"]):
        old["seconds"] = min(old["seconds"], new["seconds"])
    kept["peak_bytes"] = max(kept["peak_bytes"], record["peak_bytes"])
    kept["rounds"] = kept.get("rounds", 1) + 1
    return kept


def _throughput(record) -> float:
    return sum(i["megapixels"] for i in record["images"]) / sum(i["seconds"] for i in record["images"])


def _print_row(mode: str, record, baseline) -> None:
    images = record["images"]
    mps = _throughput(record)
    ratio = f"{mps / _throughput(baseline):.2f}x" if baseline and mode != "large" else "-"
    fidelity = record["fidelity"]
    worst = max((f["max_level_diff"] for f in fidelity), default=None)
    lowest = min((f["psnr_db"] for f in fidelity), default=None)
    fid = f"max diff {worst} levels, min PSNR {lowest:.2f} dB" if fidelity else "no reference output"
    compile_note = f", compile {record['compile_seconds']:.1f} s (excluded)" if record["compile_seconds"] else ""
    per_image = ", ".join(f"{i['image'][:12]} {i['megapixels']:.2f} MP {i['seconds']:.2f} s" for i in images)
    print(
        f"{mode:11s} {mps:9.6f} MP/s  {sum(i['seconds'] for i in images) / len(images):8.2f} s/image  "
        f"peak {record['peak_bytes'] / BYTES_PER_GIB:6.2f} GiB  vs baseline {ratio}  {fid}{compile_note}  [{per_image}]",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
