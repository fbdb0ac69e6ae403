"""The `cliplit` command: `cliplit enhance ...` and `cliplit convert ...`.

Errors are printed as one line (`error: <file>: <reason>`), never as a traceback. Under
`accelerate launch` (or torchrun), `enhance` splits the files across the processes and GPUs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .fast import FAST_DOWNSCALE

DEFAULT_OUTPUT_DIR = "enhanced"
EXIT_FAILURE = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cliplit",
        description="CLIP-LIT backlit image enhancement (Liang et al., ICCV 2023).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    enhance = commands.add_parser("enhance", help="enhance image files, folders or glob patterns")
    enhance.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, or glob patterns (quote them)")
    enhance.add_argument("--model", default=None, help="Hub repo id, from_pretrained folder, or authors' .pth "
                         "(default: $CLIPLIT_MODEL, else the authors' published model, downloaded once)")
    enhance.add_argument("--output", "-o", default=DEFAULT_OUTPUT_DIR, help=f"output folder (default: ./{DEFAULT_OUTPUT_DIR})")
    enhance.add_argument("--strength", type=float, default=None, help="0 = unchanged, 1 = published result (default: the model's)")
    enhance.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    enhance.add_argument("--mode", default="exact", choices=["exact", "fast"],
                         help="exact: the published network's pixels (default); fast: scale-matched network at 1/F resolution, about 13x faster at F=4, 48-51 dB from exact")
    enhance.add_argument("--fast-downscale", type=_fast_downscale, default=FAST_DOWNSCALE, metavar="F",
                         help=f"fast mode: run the network at 1/F resolution (default {FAST_DOWNSCALE}; 3: closer to exact, 6: faster)")
    enhance.add_argument("--tile-size", type=_tile_size, default=None, metavar="N",
                         help="process in exact tiles of N x N pixels (0: whole image; default: chosen from the image size and free memory)")
    enhance.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"],
                         help="network precision (default fp32, the exact one; fp16/bf16 are for GPUs)")
    enhance.add_argument("--compile", action="store_true", help="torch.compile the network (slow first image; pays off on many images)")
    enhance.add_argument("--recursive", "-r", action="store_true", help="also take images in subfolders of folder inputs")
    enhance.add_argument("--overwrite", action="store_true", help="replace outputs that already exist (inputs are never replaced)")
    enhance.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    convert = commands.add_parser("convert", help="convert an authors' .pth checkpoint into a from_pretrained folder")
    convert.add_argument("checkpoint", metavar="CHECKPOINT.pth")
    convert.add_argument("output_dir", metavar="OUTPUT_DIR")
    convert.add_argument("--padding-mode", default="reflect", choices=["reflect", "zeros"],
                         help="padding of the 3x3 convolutions: reflect (published model) or zeros (the authors' _noreflect variant)")
    convert.add_argument("--overwrite", action="store_true", help="write into a non-empty OUTPUT_DIR")
    convert.add_argument("--push-to-hub", metavar="REPO_ID", default=None, help="also upload the folder to this Hub repo")
    return parser


def _tile_size(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (0: whole image), got {value}")
    return value


def _fast_downscale(text: str) -> float:
    value = float(text)
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (1: full resolution), got {text}")
    return value


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def run_enhance(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from .batch import expand_inputs, plan_jobs, run_jobs, split_for_process
    from .inference import enhance_decoded, make_runtime
    from .loading import load_model, resolve_device
    from .runtime import configure_cpu, physical_cores

    files, failures = expand_inputs(args.inputs, recursive=args.recursive)
    jobs, plan_failures = plan_jobs(files, Path(args.output), overwrite=args.overwrite)
    failures += plan_failures
    process_index, num_processes, device = 0, 1, None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        import torch

        # Without CUDA (or with --device cpu) accelerate must be told: its CPU processes form a group only then.
        state = PartialState(cpu=args.device == "cpu" or not torch.cuda.is_available())
        process_index, num_processes, device = state.process_index, state.num_processes, state.device
        jobs = split_for_process(jobs, process_index, num_processes)
        failures = failures if state.is_main_process else []
    for failure in failures:
        print(f"error: {failure.message}", file=sys.stderr)
    if not jobs:
        if process_index == 0 and not failures:
            print("error: nothing to enhance", file=sys.stderr)
        return EXIT_FAILURE if failures or process_index == 0 else 0

    model = load_model(args.model, device=device or resolve_device(args.device))
    if next(model.parameters()).device.type == "cpu":
        configure_cpu(max(1, physical_cores() // num_processes))
    runtime = make_runtime(model, dtype=args.precision, compile=args.compile)
    options = {"mode": args.mode, "tile_size": args.tile_size, "runtime": runtime, "fast_downscale": args.fast_downscale}
    strength = model.resolve_strength(args.strength)
    progress = tqdm(total=len(jobs), unit="img", disable=args.quiet or process_index != 0, file=sys.stderr)

    def report(job, failure):
        if failure is not None:
            progress.write(f"error: {failure.message}", file=sys.stderr)
        progress.update(1)

    run_failures = run_jobs(jobs, lambda image: enhance_decoded(model, image, strength, **options)[0], on_done=report)
    progress.close()
    if num_processes > 1:
        print(f"process {process_index}/{num_processes}: {len(jobs) - len(run_failures)} enhanced, "
              f"{len(run_failures)} failed", file=sys.stderr)
    return EXIT_FAILURE if failures or run_failures else 0


def run_convert(args: argparse.Namespace) -> int:
    from .configuration_cliplit import CLIPLITConfig
    from .convert import convert_checkpoint

    folder = convert_checkpoint(
        args.checkpoint, args.output_dir, CLIPLITConfig(padding_mode=args.padding_mode), overwrite=args.overwrite
    )
    print(f"wrote {folder} (config.json, model.safetensors, preprocessor_config.json)")
    if args.push_to_hub:
        from .loading import load_image_processor, load_model

        load_model(folder).push_to_hub(args.push_to_hub)
        load_image_processor(folder).push_to_hub(args.push_to_hub)
        print(f"pushed to https://huggingface.co/{args.push_to_hub}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .errors import CLIPLITError

    args = build_parser().parse_args(argv)
    _quiet_transformers()
    try:
        return run_enhance(args) if args.command == "enhance" else run_convert(args)
    except CLIPLITError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
