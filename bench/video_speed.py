"""Video throughput: frames per second of the network alone and of the whole video pipeline (docs/video.md).

Usage (from the repository root):

    python bench/video_speed.py --model ../shared/reference/clip-lit/enhancement_model.pth \
        --photo ../shared/reference/clip-lit/images/111_51093504404_o.jpg [--size 1920x1080] [--frames 8] [--modes exact fast] \
        [--batch-sizes 1 4 8] [--device cuda] [--repeat 3] [--json speed.json]

A clip of `--frames` frames of `--size` (a pan over `--photo`, H.264, with an audio track) is written
first. For each mode and frame batch size the script prints:

- network: `Enhancer.enhance_frames` on frames already decoded in memory, `batch` frames per call (the
  network's own fps);
- pipeline: `VideoEnhancer(batch_size=batch).enhance_file` on the clip, from the first batch enhanced to
  the file closed (decoding, conversion, encoding and muxing overlapped with the network in threads),
  and its ratio to the network's fps (the goal is >= 90%);
- command: one whole `cliplit enhance clip.mp4 --frame-batch batch` process, start-up and model loading
  included (its seconds, and frames / seconds; the pipeline figure is the same work without the start-up).

Batch sizes (default: the engine's own, 4 on a GPU and 1 on a CPU) apply to exact mode: fast mode runs
the frames one by one (`Enhancer.enhance_frames`), so it is measured at batch size 1 only.

Network and pipeline are measured in turn `--repeat` times and the medians are printed (a shared
machine's speed drifts by 10% from one minute to the next: alternating cancels the drift out of the
ratio). The first frame (batch) of each measurement is a warm-up and is not timed. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def write_clip(path: Path, photo: Path, frames: int, width: int, height: int) -> None:
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from video_clips import write_test_clip

    write_test_clip(path, frames=frames, width=width, height=height, photo=photo)


def measure(enhancer, frames, clip: Path, folder: Path, batch: int, args) -> dict:
    """Network and pipeline fps at `batch` frames per pass, measured in turn `args.repeat` times (medians
    and each run). The first frame (or batch) of each is a warm-up and is not timed."""
    from cliplit.video.enhancer import VideoEnhancer

    enhancer.enhance_frames(frames[:batch])  # warm-up: this batch shape
    video = VideoEnhancer(enhancer, batch_size=batch)
    network_runs, pipeline_runs = [], []
    for _ in range(args.repeat):
        timed = frames[batch:] or frames
        start = time.perf_counter()
        for first in range(0, len(timed), batch):
            enhancer.enhance_frames(timed[first : first + batch])
        network_runs.append(len(timed) / (time.perf_counter() - start))
        done: list[float] = []  # when each frame was enhanced (a batch's frames together)
        start = time.perf_counter()
        video.enhance_file(clip, folder / "out.mp4", overwrite=True, on_frame=lambda done=done: done.append(time.perf_counter()))
        end = time.perf_counter()
        if len(done) > batch:  # from the first batch done (its warm-up) to the file closed
            pipeline_runs.append((len(done) - batch) / (end - done[batch - 1]))
        else:  # a clip of one batch: the whole call
            pipeline_runs.append(len(done) / (end - start))
    return {"network_fps": statistics.median(network_runs), "pipeline_fps": statistics.median(pipeline_runs),
            "network_runs": network_runs, "pipeline_runs": pipeline_runs}


def command_fps(clip: Path, output: Path, mode: str, batch: int, device, args) -> dict:
    """One whole `cliplit enhance clip.mp4` process: its seconds and frames per second, start-up included."""
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from helpers import python_env  # the repository first on PYTHONPATH, what was there kept

    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "cliplit", "enhance", str(clip), "-o", str(output), "--model", args.model,
                             "--mode", mode, "--device", str(device), "--frame-batch", str(batch), "--quiet"],
                            capture_output=True, text=True, env=python_env())
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"error: cliplit enhance {clip.name} failed: {result.stderr.strip()[-2000:]}")
    return {"command_fps": args.frames / seconds, "command_seconds": seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--photo", required=True)
    parser.add_argument("--size", default="1920x1080", help="WxH")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--modes", nargs="+", default=["exact", "fast"], choices=("exact", "fast"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                        help="frames per pass of exact mode (default: the engine's, 4 on a GPU and 1 on a CPU)")
    parser.add_argument("--repeat", type=int, default=3, help="network and pipeline measured in turn this many times")
    parser.add_argument("--no-command", action="store_true", help="leave out the whole-command measurement")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args(argv)

    import torch

    from cliplit.engine.enhancer import Enhancer
    from cliplit.engine.runtime import configure_cpu, resolve_device
    from cliplit.imaging.codec import decode_array
    from cliplit.model.loading import load_network
    from cliplit.video.enhancer import VideoEnhancer

    device = resolve_device(args.device)
    if device.type == "cpu":
        configure_cpu()
    width, height = (int(v) for v in args.size.split("x"))
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
               f"threads {torch.get_num_threads()}, device {torch.cuda.get_device_name(device) if device.type == 'cuda' else device}")
    print(f"# {machine}; {width}x{height}, {args.frames} frames")
    network = load_network(args.model)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "clip.mp4"
        write_clip(clip, Path(args.photo), args.frames, width, height)
        sys.path.insert(0, str(REPO_ROOT / "tests"))
        from video_clips import read_video_frames

        frames = [decode_array(f) for f in read_video_frames(clip)[0]]
        for mode in args.modes:
            enhancer = Enhancer(network, mode=mode, device=device)
            default_batch = VideoEnhancer(enhancer).options.batch_size
            batch_sizes = args.batch_sizes or [default_batch]
            for batch in (batch_sizes if mode == "exact" else [1]):
                row = measure(enhancer, frames, clip, Path(folder), batch, args)
                row.update(mode=mode, batch=batch, default_batch=default_batch == batch, size=f"{width}x{height}",
                           frames=args.frames)
                if not args.no_command:
                    row.update(command_fps(clip, Path(folder) / f"cli-{mode}-{batch}", mode, batch, device, args))
                rows.append(row)
                command = (f"command {row['command_fps']:7.3f} fps ({row['command_seconds']:.1f} s with start-up)"
                           if "command_fps" in row else "command not measured")
                print(f"{mode:<6} batch {batch}  network {row['network_fps']:7.3f} fps   pipeline {row['pipeline_fps']:7.3f} fps "
                      f"({100 * row['pipeline_fps'] / row['network_fps']:5.1f}% of the network)   {command}   (runs: network "
                      + " ".join(f"{v:.3f}" for v in row["network_runs"]) + ", pipeline "
                      + " ".join(f"{v:.3f}" for v in row["pipeline_runs"]) + ")", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
