"""Video throughput: frames per second of the network alone and of the whole video pipeline (docs/video.md).

Usage (from the repository root):

    python bench/video_speed.py --model ../shared/reference/clip-lit/enhancement_model.pth \
        --photo ../shared/reference/clip-lit/images/111_51093504404_o.jpg [--size 1920x1080] [--frames 8] [--modes exact fast] \
        [--repeat 3]

A clip of `--frames` frames of `--size` (a pan over `--photo`, H.264, with an audio track) is written
first. For each mode the script prints:

- network: `Enhancer.enhance_decoded` on frames already decoded in memory (the network's own fps);
- pipeline: `VideoEnhancer.enhance_file` on the clip (decoding, conversion, encoding and muxing
  overlapped with the network in threads), and its ratio to the network's fps (the goal is >= 90%);
- command: one whole `cliplit enhance clip.mp4` process, start-up and model loading included (its
  seconds, and frames / seconds; the pipeline figure is the same work without the start-up).

Network and pipeline are measured in turn `--repeat` times and the medians are printed (a shared
machine's speed drifts by 10% from one minute to the next: alternating cancels the drift out of the
ratio). The first frame of each measurement is a warm-up and is not timed. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--photo", required=True)
    parser.add_argument("--size", default="1920x1080", help="WxH")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--modes", nargs="+", default=["exact", "fast"], choices=("exact", "fast"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeat", type=int, default=3, help="network and pipeline measured in turn this many times")
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
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, device {device}; {width}x{height}, {args.frames} frames")
    network = load_network(args.model)
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "clip.mp4"
        write_clip(clip, Path(args.photo), args.frames, width, height)
        sys.path.insert(0, str(REPO_ROOT / "tests"))
        from video_clips import read_video_frames

        frames = [decode_array(f) for f in read_video_frames(clip)[0]]
        for mode in args.modes:
            enhancer = Enhancer(network, mode=mode, device=device)
            enhancer.enhance_decoded(frames[0])  # warm-up
            video = VideoEnhancer(enhancer)
            network_runs, pipeline_runs = [], []
            for _ in range(args.repeat):
                start = time.perf_counter()
                for frame in frames[1:]:
                    enhancer.enhance_decoded(frame)
                network_runs.append((len(frames) - 1) / (time.perf_counter() - start))
                times: list[float] = []
                video.enhance_file(clip, Path(folder) / f"out-{mode}.mp4", overwrite=True,
                                   on_frame=lambda times=times: times.append(time.perf_counter()))
                pipeline_runs.append((len(times) - 1) / (time.perf_counter() - times[0]))  # first frame to file closed
            network_fps, pipeline_fps = statistics.median(network_runs), statistics.median(pipeline_runs)
            start = time.perf_counter()
            result = subprocess.run([sys.executable, "-m", "cliplit", "enhance", str(clip), "-o", str(Path(folder) / f"cli-{mode}"),
                                     "--model", args.model, "--mode", mode, "--device", str(device), "--quiet"],
                                    capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
            command_seconds = time.perf_counter() - start
            if result.returncode != 0:
                print(result.stderr, file=sys.stderr)
                return 1
            print(f"{mode:<6} network {network_fps:7.3f} fps   pipeline {pipeline_fps:7.3f} fps "
                  f"({100 * pipeline_fps / network_fps:5.1f}% of the network)   "
                  f"command {args.frames / command_seconds:7.3f} fps ({command_seconds:.1f} s with start-up)   (runs: network "
                  + " ".join(f"{v:.3f}" for v in network_runs) + ", pipeline " + " ".join(f"{v:.3f}" for v in pipeline_runs) + ")",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
