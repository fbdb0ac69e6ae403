"""The `cliplit` command: `enhance`, `evaluate`, `models`, `export`, `convert`.

Errors are printed as one line (`error: <file>: <reason>`), never as a traceback. Under
`accelerate launch` (or torchrun), `enhance` splits the files across the processes and GPUs.
This module imports neither torch nor transformers at import time: `--help` is instant.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

from .. import __version__
from ..engine import settings as engine_settings
from ..engine.settings import DEFAULT_MODE, DEFAULT_PRECISION, FAST_DOWNSCALE, MIN_TILE_SIZE, MODES, PRECISION_NAMES
from ..errors import SettingsError, display_name
from ..evaluation import DEFAULT_METRICS, METRICS
from ..imaging import DEFAULT_MAX_MEGAPIXELS
from ..imaging.formats import COLOR_SPACES, DEFAULT_FORMAT, DEFAULT_QUALITY, FORMAT_CHOICES, LOSSY_FORMATS, QUALITY_RANGE
from ..imaging.raw import DEMOSAIC_ALGORITHMS, EXPOSURE_RANGE_EV, HIGHLIGHT_MODES, WHITE_BALANCES
from ..model.architecture import MAX_STRENGTH, PADDING_VARIANTS
from ..model.catalog import DEFAULT_MODEL_NAME, PUBLISHED_MODELS
from ..safety.boundary import EXIT_FAILURE, run_entry_point
from ..safety.outputs import OutputFolder, Reads, check_output_file, check_output_folder
from ..video.options import add_video_options

DEFAULT_OUTPUT_DIR = "enhanced"
# The options (argparse names) that change an output besides the engine's and the format's (`result_settings`).
RAW_RESULT_OPTIONS = ("raw_white_balance", "raw_auto_bright", "raw_demosaic", "raw_highlights", "raw_exposure")
VIDEO_RESULT_OPTIONS = ("video_codec", "video_crf")
MODEL_HELP = (f"a published model's name ({', '.join(PUBLISHED_MODELS)}; see `cliplit models`), a from_pretrained "
              f"folder, an authors' .pth file or a Hub repo id (default: $CLIPLIT_MODEL, else {DEFAULT_MODEL_NAME})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cliplit",
        description="CLIP-LIT backlit image enhancement (Liang et al., ICCV 2023).",
    )
    parser.add_argument("--version", action="version", version=f"cliplit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    enhance = commands.add_parser("enhance", help="enhance image and video files, folders or glob patterns")
    enhance.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files, folders, or glob patterns (quote them)")
    enhance.add_argument("--model", "-m", default=None, help=MODEL_HELP)
    enhance.add_argument("--output", "-o", default=DEFAULT_OUTPUT_DIR, help=f"output folder (default: ./{DEFAULT_OUTPUT_DIR})")
    add_engine_options(enhance)
    add_output_options(enhance)
    add_raw_options(enhance)
    enhance.add_argument("--recursive", "-r", action="store_true", help="also take images in subfolders of folder inputs")
    enhance.add_argument("--overwrite", action="store_true",
                         help="redo outputs that already exist (default: skip them, so a rerun completes an interrupted batch; inputs are never replaced)")
    enhance.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_video_options(enhance, _at_least)

    evaluate = commands.add_parser("evaluate", help="score enhanced images against targets (PSNR, SSIM, LPIPS, FID), "
                                   "for models and for other methods' outputs, side by side")
    evaluate.add_argument("inputs", nargs="+", metavar="INPUT", help="input images, folders or glob patterns")
    evaluate.add_argument("--targets", required=True, metavar="DIR", help="folder of targets, matched to inputs by file stem")
    evaluate.add_argument("--model", "-m", action="append", default=[], help="a model to run (repeatable); " + MODEL_HELP)
    evaluate.add_argument("--predictions", action="append", default=[], metavar="DIR",
                          help="a folder of another method's outputs, matched by stem (repeatable)")
    evaluate.add_argument("--metrics", nargs="+", choices=METRICS, default=list(DEFAULT_METRICS),
                          help=f"default: {' '.join(DEFAULT_METRICS)} (fid on request)")
    evaluate.add_argument("--output", "-o", default=None, metavar="DIR", help="write per_image.csv and summary.json here")
    evaluate.add_argument("--recursive", "-r", action="store_true", help="also take images in subfolders of folder inputs")
    evaluate.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_engine_options(evaluate)

    models = commands.add_parser("models", help="list the published models that --model takes by name, and which are "
                                 "cached (verified); `models add NAME FILE.pth` puts one in place offline")
    models_commands = models.add_subparsers(dest="models_command")
    add = models_commands.add_parser("add", help="put a published model in place from a local copy of its checkpoint "
                                     "(checked against the published sha256, converted into the cache)")
    add.add_argument("name", metavar="NAME", choices=list(PUBLISHED_MODELS), help=f"one of: {', '.join(PUBLISHED_MODELS)}")
    add.add_argument("checkpoint", metavar="FILE.pth", help="the authors' checkpoint file, as published (see `cliplit models`)")

    export = commands.add_parser("export", help="write the network as ONNX (dynamic height and width) for deployment runtimes")
    export.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    export.add_argument("output", metavar="OUTPUT.onnx")
    export.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT.onnx")

    convert = commands.add_parser("convert", help="convert an authors' .pth checkpoint into a from_pretrained folder")
    convert.add_argument("checkpoint", metavar="CHECKPOINT.pth")
    convert.add_argument("output_dir", metavar="OUTPUT_DIR")
    convert.add_argument("--padding-mode", default="reflect", choices=list(PADDING_VARIANTS),
                         help="reflect: the published network (default); noreflect: the authors' training network "
                              "(zero padding on the four outer 3x3 convolutions only); zeros: zero padding everywhere")
    convert.add_argument("--overwrite", action="store_true", help="write into a non-empty OUTPUT_DIR")
    convert.add_argument("--push-to-hub", metavar="REPO_ID", default=None, help="also upload the folder to this Hub repo")
    return parser


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """The options that say how the network runs (shared by `enhance` and `evaluate`)."""
    parser.add_argument("--strength", type=_strength, default=None, help="0 = unchanged, 1 = published result (default: the model's)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--mode", default=DEFAULT_MODE, choices=MODES,
                         help="exact: the published network's pixels (default); fast: the scale-matched network at 1/F resolution (docs/fast-mode.md)")
    parser.add_argument("--fast-downscale", type=_fast_downscale, default=FAST_DOWNSCALE, metavar="F",
                         help=f"fast mode: run the network at 1/F resolution (default {FAST_DOWNSCALE}; 3: closer to exact, 6: faster)")
    parser.add_argument("--tile-size", type=_tile_size, default=None, metavar="N",
                         help=f"process in exact tiles of N x N pixels, N >= {MIN_TILE_SIZE} (0: whole image; default: chosen from the image size and free memory)")
    parser.add_argument("--precision", default=DEFAULT_PRECISION, choices=PRECISION_NAMES,
                         help="network precision (default fp32, the exact one; fp16/bf16 for GPUs, bf16 also for CPUs with AMX: faster, within ~2 levels)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network (slow first image; pays off on many images)")
    parser.add_argument("--denoise", type=_denoise, default=engine_settings.DENOISE_OFF, metavar="off|auto|S",
                        help="clean the noise and JPEG blocks the brightening amplifies, in proportion to the gain: off (default, "
                             "the published pixels), auto (measured), or the noise level S in 8-bit levels (docs/denoise.md)")
    parser.add_argument("--max-megapixels", type=_at_least(0.01, "the largest image read"), default=DEFAULT_MAX_MEGAPIXELS,
                        metavar="MP", help=f"refuse larger images, from their header (default {DEFAULT_MAX_MEGAPIXELS:g}: enhanced within 4 GB)")


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """How results are written: format, quality, metadata, colour space (`cliplit.imaging.formats`)."""
    parser.add_argument("--format", default=DEFAULT_FORMAT, choices=FORMAT_CHOICES,
                        help="output format (default png: lossless, 16-bit kept; tiff also keeps 16 bits; jpeg, webp and avif "
                             "are 8-bit, a 16-bit result is rounded; auto: the input's format where cliplit writes it, "
                             "RAW -> 16-bit TIFF, others -> PNG)")
    parser.add_argument("--quality", type=_quality, default=None, metavar="Q",
                        help="quality of jpeg, webp and avif outputs, 1-100 (default: jpeg "
                             f"{DEFAULT_QUALITY['jpeg']} with 4:4:4 chroma, webp {DEFAULT_QUALITY['webp']}, avif {DEFAULT_QUALITY['avif']})")
    parser.add_argument("--strip-metadata", action="store_true",
                        help="write no EXIF, XMP or IPTC (no camera, date or GPS); the ICC profile is kept")
    parser.add_argument("--color-space", default=COLOR_SPACES[0], choices=COLOR_SPACES,
                        help="keep: the input's ICC profile, embedded (default); srgb: convert to sRGB (LittleCMS), for the web")


def add_raw_options(parser: argparse.ArgumentParser) -> None:
    """How camera RAW files are rendered (default: rawpy's postprocess(output_bps=16, use_camera_wb=True, no_auto_bright=True))."""
    parser.add_argument("--raw-white-balance", default=WHITE_BALANCES[0], choices=WHITE_BALANCES,
                        help="RAW white balance: camera (as shot, default), auto (LibRaw's estimate), daylight")
    parser.add_argument("--raw-auto-bright", action="store_true", help="let LibRaw brighten RAW files (default: no automatic brightening)")
    parser.add_argument("--raw-demosaic", default=None, choices=DEMOSAIC_ALGORITHMS, type=str.upper,
                        help="RAW demosaicing algorithm (default: LibRaw's, AHD)")
    parser.add_argument("--raw-highlights", default="clip", choices=list(HIGHLIGHT_MODES),
                        help="clipped RAW highlights: clip (default), ignore, blend, reconstruct")
    parser.add_argument("--raw-exposure", type=_raw_exposure, default=0.0, metavar="EV",
                        help=f"RAW exposure shift in EV, {EXPOSURE_RANGE_EV[0]:g} to +{EXPOSURE_RANGE_EV[1]:g} (default 0)")


def output_options(args: argparse.Namespace):
    """The `OutputOptions` and `RawSettings` that `add_output_options` and `add_raw_options` describe."""
    from ..imaging.formats import OutputOptions
    from ..imaging.raw import RawSettings

    return (OutputOptions(format=args.format, quality=args.quality, strip_metadata=args.strip_metadata,
                          color_space=args.color_space),
            RawSettings(white_balance=args.raw_white_balance, auto_bright=args.raw_auto_bright, demosaic=args.raw_demosaic,
                        highlights=args.raw_highlights, exposure=args.raw_exposure))


def _at_least(minimum: float, meaning: str, whole: bool = False, maximum: float | None = None):
    """An argparse type: a finite number (a whole number if `whole`) >= `minimum` (and <= `maximum`);
    `meaning` explains the bounds."""

    def parse(text: str):
        try:
            value = int(text) if whole else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {'whole ' if whole else ''}number: {text!r}") from None
        if not math.isfinite(value) or value < minimum or (maximum is not None and value > maximum):
            bounds = f">= {minimum:g}" if maximum is None else f"in [{minimum:g}, {maximum:g}]"
            raise argparse.ArgumentTypeError(f"must be a finite number {bounds} ({meaning}), got {text}")
        return value

    return parse


_strength = _at_least(0, "0: unchanged, 1: published result; beyond, every pixel saturates", maximum=MAX_STRENGTH)
_raw_exposure = _at_least(EXPOSURE_RANGE_EV[0], "EV: 0 keeps the exposure", maximum=EXPOSURE_RANGE_EV[1])
_quality = _at_least(QUALITY_RANGE[0], "1: smallest file, 100: best", whole=True, maximum=QUALITY_RANGE[1])
_fast_downscale = _at_least(1, "1: full resolution")
_whole_tile_size = _at_least(0, "0: whole image", whole=True)


def _tile_size(text: str) -> int:
    value = _whole_tile_size(text)
    if 0 < value < MIN_TILE_SIZE:
        raise argparse.ArgumentTypeError(f"must be 0 (whole image) or at least {MIN_TILE_SIZE}, got {value}")
    return value


def _denoise(text: str):
    try:
        return engine_settings.check_denoise(text)
    except SettingsError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def settings_of(args: argparse.Namespace) -> engine_settings.EngineSettings:
    """The `EngineSettings` that the engine options (`add_engine_options`) describe, for `enhance` and `evaluate`."""
    return engine_settings.EngineSettings(mode=args.mode, strength=args.strength, tile_size=args.tile_size,
                                          precision=args.precision, device=args.device, denoise=args.denoise,
                                          compile=args.compile, fast_downscale=args.fast_downscale)


def video_enhancer(enhancer, args: argparse.Namespace):
    """The `VideoEnhancer` that `enhance`'s video options describe, around the batch's `enhancer`."""
    from ..video.enhancer import VideoEnhancer

    return VideoEnhancer(enhancer, codec=args.video_codec, crf=args.video_crf, strip_metadata=args.strip_metadata,
                         max_megapixels=args.max_megapixels, max_seconds=args.max_duration,
                         batch_size=args.frame_batch)


def result_settings(args: argparse.Namespace, network, is_video: Callable[[Path], bool]):
    """
    `output_settings(source) -> dict`: what the output of `source` depends on, recorded beside it so that a
    rerun skips only the outputs made the same way (`cliplit.interfaces.resume`): the model and the engine
    settings that change the pixels (`engine_result_settings` of `settings_of(args)`), --strip-metadata,
    and the output, RAW or video options that apply to that input (`is_video(source)`: whether it is
    enhanced as a video).
    """
    from ..imaging.raw import is_raw
    from .resume import engine_result_settings

    options, _ = output_options(args)
    engine = engine_result_settings(network, settings_of(args))
    engine["strip_metadata"] = args.strip_metadata

    def output_settings(source: Path) -> dict:
        if is_video(source):  # a photo named like a video is an image, and its record says so
            return {**engine, **{name: getattr(args, name) for name in VIDEO_RESULT_OPTIONS if hasattr(args, name)}}
        output_format = options.format_for(source)
        chosen = {"format": output_format, "color_space": args.color_space}
        if output_format in LOSSY_FORMATS:
            chosen["quality"] = args.quality or DEFAULT_QUALITY[output_format]
        if is_raw(source):
            chosen.update({name: getattr(args, name) for name in RAW_RESULT_OPTIONS})
        return {**engine, **chosen}

    return output_settings


def kept_outputs_message(plan, output: Path) -> str:
    """The one line that says which existing outputs were not made with this run's model and settings."""
    from .resume import NO_RECORD, OTHER_INPUT

    options = sorted(f"--{name.replace('_', '-')}" for name in plan.kept_differences - {NO_RECORD, OTHER_INPUT})
    reasons = ([f"made with another {', '.join(options)}"] if options else []) + (
        ["made from another input file (inputs added, reordered or moved: their output names changed)"] if OTHER_INPUT in plan.kept_differences else []) + (
        ["with no record of their settings: an older cliplit, or not cliplit"] if NO_RECORD in plan.kept_differences else [])
    return (f"{display_name(output)}: {len(plan.kept)} existing output(s) not made with this model and these settings "
            f"({'; '.join(reasons)}): kept, not redone; --overwrite redoes them, or choose another --output")


def run_enhance(args: argparse.Namespace) -> int:
    from ..engine.runtime import resolve_device
    from ..imaging.files import image_extensions
    from ..video.encoders import check_crf
    from ..video.settings import VIDEO_EXTENSIONS
    from .batch import expand_inputs, reads_of_inputs

    device = resolve_device(args.device)  # a bad --device fails before anything is read or loaded
    check_crf(args.video_codec, args.video_crf)  # so does a CRF the codec does not take (for auto: checked per video)
    output = Path(args.output)
    files, failures = expand_inputs(args.inputs, recursive=args.recursive)
    check_output_folder(output, reads_of_inputs(args.inputs, files, args.recursive), "--output",
                        image_extensions() | set(VIDEO_EXTENSIONS))
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    with OutputFolder(output, "--output", keep=distributed):  # removed again if nothing is written into it
        return _enhance_into(args, output, files, failures, device, distributed)


def _enhance_into(args, output: Path, files, failures, device, distributed: bool) -> int:
    import functools

    from tqdm.auto import tqdm

    from ..engine.denoise_report import container_of, denoise_note
    from ..engine.enhancer import Enhancer
    from ..engine.runtime import configure_cpu, physical_cores
    from ..imaging.files import read_image, write_image
    from ..model.loading import load_network
    from .batch import plan_jobs, run_jobs, split_for_process
    from .resume import remember
    from .video_batch import run_video_jobs

    options, raw_settings = output_options(args)
    files, unwritable, video_sources = _refuse_unwritable_videos(files, args)  # found before the model loads
    failures = failures + unwritable
    network = load_network(args.model) if files else None  # checked before any output is skipped
    output_settings = result_settings(args, network, video_sources.__contains__) if network is not None else None
    plan = plan_jobs(files, output, overwrite=args.overwrite, suffix_for=options.suffix_for, settings_for=output_settings)
    jobs, failures = plan.jobs, failures + plan.failures
    process_index, num_processes = 0, 1
    if distributed:
        import torch
        from accelerate import PartialState

        # Without CUDA (or with --device cpu) accelerate must be told: its CPU processes form a group only then.
        state = PartialState(cpu=device.type == "cpu" or not torch.cuda.is_available())
        process_index, num_processes, device = state.process_index, state.num_processes, state.device
        jobs = split_for_process(jobs, process_index, num_processes)
        failures = failures if state.is_main_process else []
    kept = bool(plan.kept) and process_index == 0
    videos, jobs = _videos_and_images(jobs, video_sources)
    jobs, unrecordable_images = _forget_records(jobs)  # an output about to be (re)made has no record until it is complete
    videos, unrecordable_videos = _forget_records(videos)
    failures = failures + unrecordable_images + unrecordable_videos
    for failure in failures:
        print(f"error: {failure.message}", file=sys.stderr)
    if kept:
        print(f"error: {kept_outputs_message(plan, output)}", file=sys.stderr)
    if plan.skipped and process_index == 0:
        print(f"skipped {len(plan.skipped)} file(s) whose output exists, made with this model and these settings "
              "(--overwrite redoes them)", file=sys.stderr)
    if not jobs and not videos:
        if process_index == 0 and not failures and not plan.skipped and not plan.kept:
            print("error: nothing to enhance", file=sys.stderr)
        return EXIT_FAILURE if failures or kept or (process_index == 0 and not plan.skipped) else 0

    sources = {job.target: job.source for job in jobs}
    if device.type == "cpu":
        configure_cpu(max(1, physical_cores() // num_processes))
    enhancer = Enhancer(network, settings_of(args).replace(device=str(device)))
    del network  # the enhancer holds its own prepared copy
    progress = tqdm(total=len(jobs), unit="img", disable=args.quiet or process_index != 0 or not jobs, file=sys.stderr)

    def report(job, failure):
        if failure is not None:
            progress.write(f"error: {failure.message}", file=sys.stderr)
        progress.update(1)

    def write(target: Path, image) -> list[str]:
        notes = write_image(target, image, options)
        remember(target, output_settings(sources[target]), sources[target])
        return notes

    def video_done(job, failure) -> None:
        if failure is None:
            remember(job.target, output_settings(job.source), job.source)

    def note_denoised(job, image) -> None:  # what --denoise found and did (silenced by -q)
        note = denoise_note(display_name(job.source), enhancer.settings.denoise, image.denoised, container_of(job.source))
        if note is not None:
            progress.write(f"note: {note}", file=sys.stderr)

    read = functools.partial(read_image, max_megapixels=args.max_megapixels, raw_settings=raw_settings)
    run_failures = run_jobs(jobs, lambda image: enhancer.enhance_decoded(image)[0], on_done=report, read=read,
                            on_note=lambda note: progress.write(f"note: {note}", file=sys.stderr), write=write,
                            on_enhanced=None if args.quiet else note_denoised)
    progress.close()
    if videos:
        run_failures += run_video_jobs(videos, video_enhancer(enhancer, args), quiet=args.quiet or process_index != 0,
                                       on_done=video_done)
    jobs += videos
    if num_processes > 1:
        print(f"process {process_index}/{num_processes}: {len(jobs) - len(run_failures)} enhanced, "
              f"{len(run_failures)} failed", file=sys.stderr)
    return EXIT_FAILURE if failures or kept or run_failures else 0


def _forget_records(jobs: list) -> tuple[list, list]:
    """Remove the record of each job's output (`cliplit.interfaces.resume.forget`). Returns (the jobs, the failures
    of those whose record cannot be removed: its place is a folder, or `.cliplit` is a file; they are not enhanced)."""
    from .batch import Failure
    from .resume import forget, record_path

    kept, failures = [], []
    for job in jobs:
        try:
            forget(job.target)
            kept.append(job)
        except OSError as error:
            failures.append(Failure(str(job.source), f"{display_name(job.source)}: the record of its output cannot be "
                                    f"replaced ({display_name(record_path(job.target))}: {error.strerror}): not enhanced"))
    return kept, failures


def _refuse_unwritable_videos(files: list, args: argparse.Namespace) -> tuple[list, list, set]:
    """
    `files` without the videos that cannot be written as asked, their failures (a container that does not
    take `--video-codec`, or a codec that takes no such `--video-crf`: an output keeps its input's
    container), and the files kept that hold a video (`holds_video`, read once here). Checked before the
    model loads.
    """
    from ..errors import CLIPLITError
    from ..video.encoders import choose_encoder
    from ..video.reading import holds_video
    from .video_batch import video_failure

    kept, failures, videos = [], [], set()
    for source in files:
        if holds_video(source):
            try:
                choose_encoder(source, args.video_codec, args.video_crf, display_name(source))
            except CLIPLITError as error:
                failures.append(video_failure(source, error))
                continue
            videos.add(source)
        kept.append(source)
    return kept, failures, videos


def _videos_and_images(jobs: list, video_sources: set) -> tuple[list, list]:
    """
    `jobs` split by content: (videos, images), `video_sources` the inputs that hold a video. A file named like
    a video that holds an image (a photo named .mp4) is an image, with a note (`plan_jobs` named its output
    as an image's).
    """
    from ..video.reading import image_format_inside
    from ..video.settings import is_video_file

    videos, images = [], []
    for job in jobs:
        if job.source in video_sources:
            videos.append(job)
            continue
        if is_video_file(job.source):
            print(f"note: {display_name(job.source)}: is an image ({image_format_inside(job.source)}), not a video: "
                  f"enhanced as an image, into {display_name(job.target.name)}", file=sys.stderr)
        images.append(job)
    return videos, images


def run_evaluate(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from ..engine.enhancer import Enhancer
    from ..engine.runtime import configure_cpu, physical_cores, resolve_device
    from ..evaluation.evaluate import Method, evaluate, image_keys, index_by_stem, summarize, table, write_reports
    from ..model.loading import load_network
    from .batch import expand_inputs, reads_of_inputs

    device = resolve_device(args.device)
    targets = index_by_stem(Path(args.targets), "--targets")
    predictions = [Method(display_name(folder), predictions=index_by_stem(Path(folder), "--predictions"))
                   for folder in args.predictions]
    files, failures = expand_inputs(args.inputs, recursive=args.recursive)
    output = Path(args.output) if args.output else None
    if output is not None:  # checked before any work: the reports are written at the end
        reads = reads_of_inputs(args.inputs, files, args.recursive)
        for folder in [args.targets, *args.predictions]:
            reads.add_folder(folder, recursive=False)
        check_output_folder(output, reads, "--output")
    for failure in failures:
        print(f"error: {failure.message}", file=sys.stderr)
    if device.type == "cpu":
        configure_cpu(physical_cores())
    methods = []
    settings = settings_of(args).replace(device=str(device), keep_workspace=False)  # no engine holds buffers between images
    for spec in args.model or ([] if args.predictions else [None]):  # each built once, with `enhance`'s settings
        engine = Enhancer(load_network(spec), settings)
        methods.append(Method(spec or DEFAULT_MODEL_NAME, enhance=lambda image, e=engine: e.enhance_decoded(image)[0]))
    methods += predictions
    messages = []

    def report(line: str) -> None:
        messages.append(line)
        tqdm.write(line, file=sys.stderr)

    progress = lambda items: tqdm(items, unit="img", disable=args.quiet, file=sys.stderr)  # noqa: E731
    scores, set_level = evaluate(files, targets, methods, args.metrics, report, device=device,
                                 max_megapixels=args.max_megapixels, progress=progress, keys=image_keys(files))
    summary = summarize(scores, set_level, args.metrics)
    if output is not None:  # the reports first: a closed stdout must not lose them
        with OutputFolder(output, "--output"):
            write_reports(output, scores, summary, args.metrics)
    print(table(summary, args.metrics))
    if output is not None:
        print(f"wrote {output / 'per_image.csv'} and summary.json")
    return EXIT_FAILURE if failures or any(line.startswith("error:") for line in messages) else 0


def run_models(args: argparse.Namespace) -> int:
    from ..model.cache import cache_problem
    from ..model.loading import cache_dir, published_folder

    if args.models_command == "add":
        return run_models_add(args)
    print(f"{'name':<26} {'cached':<7} trained with")
    damaged = []
    for model in PUBLISHED_MODELS.values():
        default = " (default)" if model.name == DEFAULT_MODEL_NAME else ""
        problem = cache_problem(published_folder(model), model)
        state = "yes" if problem is None else "no" if problem == "not cached" else "damaged"
        if state == "damaged":
            damaged.append(f"note: {model.name}: the cached folder does not verify ({problem}); it is rebuilt on "
                           f"its next use, or run `cliplit models add {model.name} {model.filename}`")
        print(f"{model.name + default:<26} {state:<7} {model.trained_with}")
        print(f"{'':<34} source: {model.url}")
    print(f"cache: {cache_dir()} (downloaded once, sha256-checked, converted to safetensors; offline: "
          f"`cliplit models add NAME FILE.pth`)")
    for line in damaged:
        print(line, file=sys.stderr)
    return 0


def run_models_add(args: argparse.Namespace) -> int:
    from ..model.cache import add_published_model
    from ..model.loading import cache_dir

    reads = Reads().add_file(args.checkpoint)
    check_output_folder(cache_dir(), reads, "the cache ($CLIPLIT_CACHE)")
    with OutputFolder(cache_dir(), "cache ($CLIPLIT_CACHE)"):
        folder = add_published_model(args.name, args.checkpoint, cache_dir())
    print(f"{args.name}: checked (published sha256) and converted into {folder}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ..engine.onnx_export import export_onnx
    from ..model.loading import load_network, locate_model

    output = Path(args.output)
    model_path = locate_model(args.model)
    check_output_file(output, Reads().add_model(model_path), "OUTPUT.onnx", overwrite=args.overwrite)
    with OutputFolder(output.parent, "OUTPUT.onnx folder"):
        export_onnx(load_network(model_path), output)
    print(f"wrote {output} (input pixel_values (1, 3, H, W) in [0, 1]; outputs enhanced, illumination)")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from ..model.configuration_cliplit import CLIPLITConfig
    from ..model.conversion import convert_checkpoint
    from ..model.loading import offline

    if args.push_to_hub and offline():
        raise SettingsError(f"--push-to-hub {display_name(args.push_to_hub)}: HF_HUB_OFFLINE is set: nothing can be "
                            "uploaded (convert without --push-to-hub, or unset HF_HUB_OFFLINE)")
    check_output_folder(args.output_dir, Reads().add_file(args.checkpoint), "OUTPUT_DIR")
    padding_mode, outer_padding_mode = PADDING_VARIANTS[args.padding_mode]
    config = CLIPLITConfig(padding_mode=padding_mode, outer_padding_mode=outer_padding_mode)
    folder = convert_checkpoint(args.checkpoint, args.output_dir, config, overwrite=args.overwrite)
    print(f"wrote {folder} (config.json, model.safetensors, preprocessor_config.json)")
    if args.push_to_hub:
        from ..model.loading import load_image_processor, load_model

        try:
            load_model(folder).push_to_hub(args.push_to_hub)
            load_image_processor(folder).push_to_hub(args.push_to_hub)
        except Exception as error:  # noqa: BLE001 - huggingface_hub raises many types (network, auth, repo)
            from ..errors import first_line

            raise SettingsError(f"--push-to-hub {display_name(args.push_to_hub)}: could not upload ({first_line(error)}); "
                                f"the converted folder {display_name(folder)} is complete") from None
        print(f"pushed to https://huggingface.co/{args.push_to_hub}")
    return 0


COMMANDS = {"enhance": run_enhance, "evaluate": run_evaluate, "models": run_models, "export": run_export,
            "convert": run_convert}


def main(argv: list[str] | None = None) -> int:
    def run() -> int:
        args = build_parser().parse_args(argv)  # inside the boundary: `--help | head` ends quietly too
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # one-line output: no library chatter ...
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # ... nor their progress bars
        return COMMANDS[args.command](args)

    return run_entry_point(run)  # one line per failure, quiet on a closed stdout


if __name__ == "__main__":
    sys.exit(main())
