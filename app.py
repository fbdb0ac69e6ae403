"""The CLIP-LIT demo: upload a backlit photo, get it enhanced (the app a Hugging Face Space runs).

    python app.py [--model HUB_ID|FOLDER|FILE.pth] [--device auto|cpu|cuda] [--port 7860]

This script is the page: the ZeroGPU import, one function per tab (`photo_tab`, `video_tab`), the
handlers they call, the `/enhance` endpoint and `main`. The work is the package's
`cliplit.interfaces.service.EnhancementService`: the model, loaded once at start (from --model: a
published model's name, a folder, an authors' .pth or a Hub id; else $CLIPLIT_MODEL, else `clip-lit`,
as `cliplit enhance` does), its engines (exact for the result, fast for the preview), the limits, the
reading of uploads and the output files, so that the downloadable PNG has the same pixels as
`cliplit enhance` gives. On ZeroGPU this script hands the service `spaces.GPU` to wrap its GPU calls.
A "Video" tab enhances a video file as `cliplit enhance clip.mp4` does (container, timestamps and
other streams kept, docs/video.md), within the app's duration and frame-size limits, with a progress bar.
Endpoints for `gradio_client`: `client.predict(handle_file(path), strength, api_name="/enhance")`, and
`client.predict(handle_file(clip), strength, denoise, fast, api_name="/enhance_video")`.
Importing this module loads nothing and launches nothing: see `build_demo` and `main`.
"""

from __future__ import annotations

import os

ZERO_GPU_ENV_VAR = "SPACES_ZERO_GPU"
ZERO_GPU = bool(os.environ.get(ZERO_GPU_ENV_VAR))
if ZERO_GPU:  # Hugging Face ZeroGPU: `spaces` must be imported before torch, and only there
    import spaces

import argparse
import functools
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from cliplit.engine.denoise_report import container_of, denoise_note
from cliplit.engine.runtime import resolve_device
from cliplit.engine.settings import DENOISE_AUTO
from cliplit.errors import CLIPLITError
from cliplit.imaging import DEFAULT_MAX_MEGAPIXELS
from cliplit.imaging.codec import DecodedImage
from cliplit.imaging.files import PIXELS_PER_MEGAPIXEL
from cliplit.imaging.formats import HEIF_EXTENSIONS
from cliplit.imaging.raw import RAW_EXTENSIONS
from cliplit.interfaces.cli import MODEL_HELP
from cliplit.interfaces.service import (
    BYTES_PER_MB,
    DEFAULT_MAX_FILE_MB,
    DEFAULT_MAX_VIDEO_MEGAPIXELS,
    DEFAULT_MAX_VIDEO_SECONDS,
    EnhancementService,
    resize_for_display,
)

TITLE = "CLIP-LIT: backlit image enhancement"
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
EXAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png")
DOWNLOAD_LABELS = {"PNG": "png", "JPEG": "jpeg", "16-bit TIFF": "tiff"}  # the page's label -> the service's output format
DEFAULT_DOWNLOAD = "PNG"
# The Photo tab's "Clean the shadows" box: ticked (`--denoise auto`), measured in docs/denoise.md; the
# `enhance` API, like the CLI and the Python API, gives the published pixels unless asked
CLEAN_SHADOWS_BY_DEFAULT = True
DEFAULT_CONCURRENCY = 1  # one enhancement at a time bounds memory; raise it on a big GPU
QUEUE_MAX_SIZE = 32
DISPLAY_MAX_SIDE = 1600  # the before/after view and the illumination map are shown at most this large
INPUT_HEIGHT_PX = 440
STRENGTH_RANGE = (0.0, 2.0)
STRENGTH_STEP = 0.05
STRENGTH_LABEL = "Strength (0 = unchanged, 1 = published result)"
GRADIO_CACHE_CLEANUP = (3600, 3600)  # (every, older than) seconds: uploads and results in gradio's cache
GRADIO_TEMP_ENV_VAR = "GRADIO_TEMP_DIR"


def zero_gpu_call(function, duration_s: float):
    """ZeroGPU's wrapper (`EnhancementService.gpu`): `function` runs with a GPU attached, for at most `duration_s`."""
    return spaces.GPU(duration=duration_s)(function)


def new_service(model, **limits) -> EnhancementService:
    """The app's service for `model` with `limits` (its `max_*` fields); on ZeroGPU its GPU calls run in `spaces.GPU`."""
    return EnhancementService(model, gpu=zero_gpu_call if ZERO_GPU else None, **limits)


def raw_path_image(**kwargs) -> gr.Image:
    """
    A `gr.Image(type="filepath")` that hands the uploaded file's path to the function without opening
    it, so that unreadable files reach `read_image` (and get its readable message) and 16-bit, EXIF
    and alpha are read exactly as the CLI reads them. Gradio's upload checks still run before this;
    pasted data URLs still go through gradio's own decoding. (An instance override, not a subclass:
    gradio writes a .pyi file next to the module of every Component subclass.)
    """
    image = gr.Image(type="filepath", image_mode=None, **kwargs)
    decode = image.preprocess

    def preprocess(payload):
        if payload is None or payload.path is None or (payload.url or "").startswith("data:"):
            return decode(payload)
        return str(payload.path)

    image.preprocess = preprocess
    return image


def _to_display(pixels):
    """(H, W[, C]) floats in [0, 1] -> uint8 at most `DISPLAY_MAX_SIDE` on its longer side."""
    return resize_for_display(pixels, DISPLAY_MAX_SIDE)


def _describe(image: DecodedImage) -> str:
    width, height = image.size
    return f"{width} × {height} px ({width * height / PIXELS_PER_MEGAPIXEL:.1f} MP)"


def denoise_status(path: str | os.PathLike, enhanced: DecodedImage) -> str:
    """The status line on what "Clean the shadows" found and did to the upload `path` (the CLI's `note:` text), or ""."""
    note = denoise_note(Path(path).name, DENOISE_AUTO, enhanced.denoised, container_of(path))
    return f"  \nNote: {note}" if note is not None else ""


def serving(service: EnhancementService, handler):
    """`handler(service, ...)` as an event function: gradio reads the signature left (the API's parameters),
    the name and the docstring (the API page's description)."""
    function = functools.partial(handler, service)
    function.__name__, function.__doc__ = handler.__name__, handler.__doc__
    return function


# ---------------------------------------------------------------------------------------- handlers
def enhance_api(service: EnhancementService, path: str | None, strength: float | None = None, denoise: bool = False) -> str:
    """Enhance a backlit photo at full resolution (`denoise`: clean the shadows); returns the enhanced PNG."""
    if not path:
        raise gr.Error("no image was uploaded")
    try:
        return str(service.enhance_file(path, strength, denoise=bool(denoise))[3])
    except CLIPLITError as error:
        raise gr.Error(str(error), print_exception=False) from None


def enhance_page(service: EnhancementService, path: str | None, strength: float, download: str = DEFAULT_DOWNLOAD,
                 file_path: str | None = None, denoise: bool = False):
    path = file_path or path  # a RAW or HEIC file (which browsers do not show as images) comes first
    if not path:
        raise gr.Error("Upload a backlit photo first.", print_exception=False)
    start = time.perf_counter()
    try:
        image, enhanced, illumination, target = service.enhance_file(path, strength, DOWNLOAD_LABELS[download], denoise)
    except CLIPLITError as error:
        raise gr.Error(str(error), print_exception=False) from None
    seconds = time.perf_counter() - start
    status = (
        f"**Enhanced** {_describe(image)} at strength {strength:g} in **{seconds:.2f} s** on "
        f"{service.device_name}. The {download} below is full resolution, with the photo's metadata and colour profile."
    ) + (f"  \nNote: {image.note}" if image.note else "") + denoise_status(path, enhanced)
    slider = (_to_display(image.pixels), _to_display(enhanced.pixels))
    return slider, _to_display(illumination), str(target), status


def preview_page(service: EnhancementService, path: str | None, strength: float, file_path: str | None = None,
                 denoise: bool = False):
    path = file_path or path
    if not path:
        return None, None, None, ""
    start = time.perf_counter()
    try:
        small, enhanced, illumination = service.preview(path, strength, denoise)
    except CLIPLITError as error:
        raise gr.Error(str(error), print_exception=False) from None
    seconds = time.perf_counter() - start
    status = (
        f"Preview at {_describe(small)} in {seconds:.2f} s. "
        "Click **Enhance** for the full-resolution result and its PNG."
    )
    slider = (_to_display(small.pixels), _to_display(enhanced.pixels))
    return slider, _to_display(illumination), None, status


class FrameProgress:
    """One video's frames on gradio's progress bar: `start(estimated)` once, then `frame_done()` per frame."""

    def __init__(self, progress):
        self.progress, self.done, self.total = progress, 0, None  # total None: unknown

    def start(self, estimated: int) -> None:
        self.total = estimated or None
        self.progress((0, self.total), desc="Enhancing", unit="frames")

    def frame_done(self) -> None:
        self.done += 1
        self.progress((self.done, self.total), desc="Enhancing", unit="frames")


def enhance_video_page(service: EnhancementService, path: str | None, strength: float, denoise: bool = False,
                       fast: bool = False, progress=gr.Progress()):
    """Enhance a backlit video (same container, timestamps, audio and subtitles); returns (video, status)."""
    if not path:
        raise gr.Error("Upload a backlit video first.", print_exception=False)
    frames_progress = FrameProgress(progress)
    started = time.perf_counter()
    try:
        target, frames, notes = service.enhance_video_file(path, strength, bool(denoise), bool(fast), frames_progress.start,
                                                           frames_progress.frame_done)
    except CLIPLITError as error:
        raise gr.Error(str(error), print_exception=False) from None
    seconds = time.perf_counter() - started
    status = (f"**Enhanced** {frames} frames at strength {strength:g} in **{seconds:.1f} s** "
              f"({frames / seconds:.1f} frames/s, {'fast' if fast else 'exact'} mode) on {service.device_name}. "
              "Timestamps, audio, subtitles and metadata are kept.")
    return str(target), "  \n".join([status, *(f"Note: {note}" for note in notes)])


# ---------------------------------------------------------------------------------------- the page
@dataclass
class PhotoInputs:
    """The photo tab's inputs the `/enhance` endpoint reads too."""

    image: gr.Image
    strength: gr.Slider
    denoise: gr.Checkbox


def photo_tab(service: EnhancementService) -> PhotoInputs:
    """The Photo tab: upload, strength, download format, "Clean the shadows", Enhance; the before/after slider,
    the download and the illumination map; a preview on upload and on strength release."""
    with gr.Row():
        with gr.Column():
            image_in = raw_path_image(
                label="Backlit photo",
                height=INPUT_HEIGHT_PX,
                sources=["upload", "clipboard", "webcam"],
                elem_id="input-image",
            )
            file_in = gr.File(label="... or a RAW or HEIC file", file_types=sorted(RAW_EXTENSIONS | HEIF_EXTENSIONS),
                              type="filepath", elem_id="file-input")
            strength = gr.Slider(*STRENGTH_RANGE, value=service.default_strength, step=STRENGTH_STEP, label=STRENGTH_LABEL,
                                 elem_id="strength")
            download_format = gr.Radio(list(DOWNLOAD_LABELS), value=DEFAULT_DOWNLOAD, label="Download as",
                                       elem_id="download-format")
            denoise = gr.Checkbox(value=CLEAN_SHADOWS_BY_DEFAULT, elem_id="denoise",
                                  label="Clean the shadows (noise and compression blocks the brightening amplifies; "
                                        "on by default here, off in the API and the CLI)")
            enhance_button = gr.Button("Enhance", variant="primary", elem_id="enhance-button")
            status = gr.Markdown(elem_id="status")
        with gr.Column():
            slider = gr.ImageSlider(label="Before / after", interactive=False, elem_id="before-after")
            download = gr.File(label="Full-resolution result", interactive=False, elem_id="download")
            with gr.Accordion("Illumination map", open=False):
                illumination_view = gr.Image(label="Illumination map (L)", interactive=False, elem_id="illumination")
    examples = sorted(p for p in EXAMPLES_DIR.glob("*") if p.suffix.lower() in EXAMPLE_SUFFIXES)
    if examples:
        gr.Examples([[str(path)] for path in examples], inputs=[image_in], label="Example backlit photos")

    page_outputs = [slider, illumination_view, download, status]
    enhance_button.click(serving(service, enhance_page), [image_in, strength, download_format, file_in, denoise], page_outputs,
                         api_visibility="private")
    gr.on([image_in.change, file_in.change, strength.release, denoise.change], serving(service, preview_page),
          [image_in, strength, file_in, denoise], page_outputs, api_visibility="private", trigger_mode="always_last")
    return PhotoInputs(image_in, strength, denoise)


def video_tab(service: EnhancementService) -> None:
    """The Video tab: upload, strength, "Clean the shadows", fast mode, Enhance video (`/enhance_video`)."""
    gr.Markdown(
        "A backlit video (.mp4 .mov .m4v .mkv .webm .avi), enhanced frame by frame; frame rate, timestamps, "
        f"audio, subtitles and metadata are kept. Limits: {service.max_video_seconds:g} s, "
        f"{service.max_video_megapixels:g} megapixels per frame, {service.max_file_mb:g} MB."
    )
    with gr.Row():
        with gr.Column():
            video_in = gr.Video(label="Backlit video", sources=["upload"], elem_id="input-video")
            strength = gr.Slider(*STRENGTH_RANGE, value=service.default_strength, step=STRENGTH_STEP, label=STRENGTH_LABEL,
                                 elem_id="video-strength")
            denoise = gr.Checkbox(value=False, label="Clean the shadows", elem_id="video-denoise")
            fast = gr.Checkbox(value=service.device_name == "CPU",  # exact 1080p video is slow on a CPU
                               label="Fast mode (about 13x faster on a CPU, 48-51 dB PSNR from the exact result)",
                               elem_id="video-fast")
            button = gr.Button("Enhance video", variant="primary", elem_id="enhance-video-button")
        with gr.Column():
            video_out = gr.Video(label="Enhanced video", interactive=False, elem_id="output-video")
            status = gr.Markdown(elem_id="video-status")
    button.click(serving(service, enhance_video_page), [video_in, strength, denoise, fast], [video_out, status],
                 api_name="enhance_video")


def enhance_endpoint(service: EnhancementService, photo: PhotoInputs) -> None:
    """The public `/enhance` API: image in, enhanced full-resolution PNG out, strength and denoise optional: the
    published pixels unless `denoise` is given (its own input: the page's box is ticked by default, the API's is not)."""
    api_output = gr.Image(label="enhanced", type="filepath", format="png", visible=False)
    api_button = gr.Button(visible=False)
    api_denoise = gr.Checkbox(value=False, visible=False)
    api_button.click(serving(service, enhance_api), [photo.image, photo.strength, api_denoise], api_output,
                     api_name="enhance")


def build_demo(
    model,
    *,
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
    max_file_mb: float = DEFAULT_MAX_FILE_MB,
    concurrency: int = DEFAULT_CONCURRENCY,
    max_video_seconds: float = DEFAULT_MAX_VIDEO_SECONDS,
    max_video_megapixels: float = DEFAULT_MAX_VIDEO_MEGAPIXELS,
) -> gr.Blocks:
    """The demo's page and its `enhance` and `enhance_video` API endpoints, queued; the caller launches it."""
    service = new_service(model, max_megapixels=max_megapixels, max_file_mb=max_file_mb,
                          max_video_seconds=max_video_seconds, max_video_megapixels=max_video_megapixels)
    with gr.Blocks(title=TITLE, delete_cache=GRADIO_CACHE_CLEANUP) as demo:
        gr.Markdown(
            f"# {TITLE}\n"
            "Upload, paste or photograph a backlit picture (bright sky or window behind a dark subject), or give a "
            "camera RAW or HEIC file, and click **Enhance**. CLIP-LIT (Liang et al., ICCV 2023) estimates the illumination and divides it out. "
            f"Limits: {max_megapixels:g} megapixels, {max_file_mb:g} MB. Videos: the **Video** tab."
        )
        with gr.Tabs():
            with gr.Tab("Photo", id="photo"):
                photo = photo_tab(service)
            with gr.Tab("Video", id="video"):
                video_tab(service)
        enhance_endpoint(service, photo)
    demo.queue(default_concurrency_limit=concurrency, max_size=QUEUE_MAX_SIZE)
    demo.service = service  # for `close_demo`
    return demo


def close_demo(demo: gr.Blocks) -> None:
    """Stop the server and delete the results it wrote."""
    demo.close()
    demo.service.close()


def launch_options(max_file_mb: float = DEFAULT_MAX_FILE_MB) -> dict:
    """`demo.launch` keyword arguments the app always uses (tests use them too)."""
    return {"max_file_size": f"{int(max_file_mb * BYTES_PER_MB)}b", "show_error": True}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=TITLE)
    parser.add_argument("--model", default=None, help=MODEL_HELP)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--max-megapixels", type=float, default=DEFAULT_MAX_MEGAPIXELS,
                        help=f"refuse larger images (default: {DEFAULT_MAX_MEGAPIXELS:g})")
    parser.add_argument("--max-file-mb", type=float, default=DEFAULT_MAX_FILE_MB,
                        help=f"refuse larger uploads (default: {DEFAULT_MAX_FILE_MB})")
    parser.add_argument("--max-video-seconds", type=float, default=DEFAULT_MAX_VIDEO_SECONDS,
                        help=f"refuse longer videos (default: {DEFAULT_MAX_VIDEO_SECONDS:g})")
    parser.add_argument("--max-video-megapixels", type=float, default=DEFAULT_MAX_VIDEO_MEGAPIXELS,
                        help=f"refuse videos with larger frames (default: {DEFAULT_MAX_VIDEO_MEGAPIXELS:g}, 1080p)")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                        help=f"enhancements run at once; others wait in the queue (default: {DEFAULT_CONCURRENCY})")
    parser.add_argument("--host", default=None, help="address to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    return parser


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt  # gradio's blocking loop ends on it and closes the server; `main` then cleans up


def main(argv: list[str] | None = None) -> int:
    """Load the model (as `cliplit enhance` does), serve the page until Ctrl-C or SIGTERM, delete what it wrote."""
    args = build_parser().parse_args(argv)
    from cliplit.model.loading import load_network

    try:  # on ZeroGPU the GPU exists only inside `spaces.GPU` calls: the model waits on the CPU
        device = "cpu" if ZERO_GPU else resolve_device(args.device)
        model = load_network(args.model, device=device)
    except CLIPLITError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    own_temp = None
    if not os.environ.get(GRADIO_TEMP_ENV_VAR):  # uploads and results in a folder of ours, removed on exit
        own_temp = tempfile.mkdtemp(prefix="cliplit-app-uploads-")
        os.environ[GRADIO_TEMP_ENV_VAR] = own_temp
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    demo = build_demo(model, max_megapixels=args.max_megapixels, max_file_mb=args.max_file_mb,
                      concurrency=args.concurrency, max_video_seconds=args.max_video_seconds,
                      max_video_megapixels=args.max_video_megapixels)
    try:
        demo.launch(server_name=args.host, server_port=args.port, share=args.share, **launch_options(args.max_file_mb))
    except KeyboardInterrupt:
        pass
    finally:
        close_demo(demo)
        if own_temp is not None:
            shutil.rmtree(own_temp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
