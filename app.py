"""The CLIP-LIT demo: upload a backlit photo, get it enhanced (the app a Hugging Face Space runs).

    python app.py [--model HUB_ID|FOLDER|FILE.pth] [--device auto|cpu|cuda] [--port 7860]

The model is loaded once at start (from --model: a published model's name, a folder, an authors' .pth
or a Hub id; else $CLIPLIT_MODEL, else `clip-lit`, as `cliplit enhance` does) and prepared once in
two `cliplit.Enhancer` engines (exact for the result, fast for the preview). Uploads are read with
`cliplit.imaging.files.read_image` and written with `write_image`, so the downloadable PNG has the
same pixels as `cliplit enhance` gives.
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
import dataclasses
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from cliplit.engine.denoise_report import container_of, denoise_note
from cliplit.engine.enhancer import Enhancer
from cliplit.engine.runtime import resolve_device
from cliplit.engine.settings import DENOISE_AUTO
from cliplit.errors import CLIPLITError, ImageReadError, display_name
from cliplit.imaging import DEFAULT_MAX_MEGAPIXELS
from cliplit.imaging.codec import EIGHT_BIT_MAX, DecodedImage
from cliplit.imaging.files import OUTPUT_SUFFIX, PIXELS_PER_MEGAPIXEL, read_image, write_image
from cliplit.imaging.formats import FORMAT_SUFFIXES, HEIF_EXTENSIONS
from cliplit.imaging.raw import RAW_EXTENSIONS
from cliplit.interfaces.cli import MODEL_HELP
from cliplit.model.architecture import resolve_strength
from cliplit.video.settings import VIDEO_EXTENSIONS, is_video_file

TITLE = "CLIP-LIT: backlit image enhancement"
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
EXAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png")
DOWNLOAD_FORMATS = {"PNG": "png", "JPEG": "jpeg", "16-bit TIFF": "tiff"}  # label -> cliplit output format
DEFAULT_DOWNLOAD = "PNG"
DEFAULT_MAX_FILE_MB = 50
BYTES_PER_MB = 1 << 20
# The Photo tab's "Clean the shadows" box: ticked (`--denoise auto`), measured in docs/denoise.md; the
# `enhance` API, like the CLI and the Python API, gives the published pixels unless asked
CLEAN_SHADOWS_BY_DEFAULT = True
DEFAULT_CONCURRENCY = 1  # one enhancement at a time bounds memory; raise it on a big GPU
QUEUE_MAX_SIZE = 32
DISPLAY_MAX_SIDE = 1600  # the before/after view and the illumination map are shown at most this large
PREVIEW_MAX_SIDE = 512  # the instant preview (on upload / strength change) runs at this size
INPUT_HEIGHT_PX = 440
STRENGTH_RANGE = (0.0, 2.0)
STRENGTH_STEP = 0.05
OUTPUT_MAX_AGE_S = 3600  # enhanced PNGs older than this are deleted from the app's output folder
GRADIO_CACHE_CLEANUP = (3600, 3600)  # (every, older than) seconds: uploads and results in gradio's cache
ZERO_GPU_DURATION_S = 60
ZERO_GPU_VIDEO_DURATION_S = 120
DEFAULT_MAX_VIDEO_SECONDS = 60.0
DEFAULT_MAX_VIDEO_MEGAPIXELS = 2.1  # 1920 x 1080 frames
GRADIO_TEMP_ENV_VAR = "GRADIO_TEMP_DIR"
PREVIEW_MODE = "fast"


class UploadError(CLIPLITError):
    """An upload the app refuses: unreadable, or over the size limits. The message is one line."""


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


def _named_by_upload(error: Exception, path: Path) -> str:
    """`error`'s message with the upload's temporary path replaced by the file's own name."""
    return str(error).replace(display_name(path), display_name(path.name))


@dataclass
class DemoEnhancer:
    """The loaded model, its engines and the app's limits; one per app, created in `build_demo` (or by a test)."""

    model: object
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS
    max_file_mb: float = DEFAULT_MAX_FILE_MB
    max_video_seconds: float = DEFAULT_MAX_VIDEO_SECONDS
    max_video_megapixels: float = DEFAULT_MAX_VIDEO_MEGAPIXELS
    output_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cliplit-app-")))
    _engines: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        run, run_video = self._run_model, self._run_video
        self.run_model = spaces.GPU(duration=ZERO_GPU_DURATION_S)(run) if ZERO_GPU else run
        self.run_video = spaces.GPU(duration=ZERO_GPU_VIDEO_DURATION_S)(run_video) if ZERO_GPU else run_video

    @property
    def device_name(self) -> str:
        device = next(self.model.parameters()).device
        return "GPU" if ZERO_GPU or device.type == "cuda" else device.type.upper()

    @property
    def default_strength(self) -> float:
        return resolve_strength(self.model.config)

    def close(self) -> None:
        """Delete every result this app wrote (its output folder)."""
        shutil.rmtree(self.output_dir, ignore_errors=True)

    def engine(self, fast: bool, denoise: bool = False) -> Enhancer:
        """
        The exact or the fast (preview) engine, built once. A server keeps no activation buffers between
        uploads (they would hold ~1 kB per pixel of the largest photo seen); on ZeroGPU the GPU exists
        only inside `spaces.GPU` calls, so each call builds its own engine there. `denoise`: clean the
        shadows (`denoise="auto"`, docs/denoise.md).
        """
        mode = PREVIEW_MODE if fast else "exact"
        setting = "auto" if denoise else "off"
        if ZERO_GPU:  # inside the `spaces.GPU` call, where the GPU is attached ("auto": CUDA when present)
            return Enhancer(self.model, mode=mode, device=resolve_device("auto"), keep_workspace=False, denoise=setting)
        if (mode, setting) not in self._engines:
            self._engines[mode, setting] = Enhancer(self.model, mode=mode, keep_workspace=False, denoise=setting)
        return self._engines[mode, setting]

    def _check_upload(self, path: Path, what: str) -> None:
        if not path.is_file():
            raise UploadError(f"no {what} was uploaded")
        size_mb = path.stat().st_size / BYTES_PER_MB
        if size_mb > self.max_file_mb:
            raise UploadError(f"{path.name}: the file is {size_mb:.1f} MB, over the {self.max_file_mb:g} MB limit")

    def read(self, path: str | os.PathLike) -> DecodedImage:
        """Check the limits, then decode as the CLI does; raises `UploadError` with a one-line message."""
        path = Path(path)
        self._check_upload(path, "image")
        try:  # the pixel limit is checked from the header, before decoding
            return read_image(path, max_megapixels=self.max_megapixels)
        except ImageReadError as error:
            raise UploadError(_named_by_upload(error, path)) from None

    def _run_model(self, image: DecodedImage, strength: float | None, fast: bool = False,
                   denoise: bool = False) -> tuple[DecodedImage, np.ndarray]:
        try:  # the engine tiles large images itself (bounded memory)
            return self.engine(fast, denoise).enhance_decoded(image, strength)
        except ValueError as error:
            raise UploadError(str(error)) from None

    def enhance_file(self, path: str, strength: float | None,
                     download: str = DEFAULT_DOWNLOAD, denoise: bool = False) -> tuple[DecodedImage, DecodedImage, np.ndarray, Path]:
        """
        Read (any input `cliplit enhance` reads: HEIC, RAW, ...), enhance at full resolution, write the
        download as `download` (a `DOWNLOAD_FORMATS` label) with the upload's metadata and ICC profile.
        `denoise`: clean the shadows (docs/denoise.md).
        Returns (input, enhanced, illumination, download path).
        """
        if download not in DOWNLOAD_FORMATS:
            raise UploadError(f"unknown download format {download!r} (one of {', '.join(DOWNLOAD_FORMATS)})")
        image = self.read(path)
        enhanced, illumination = self.run_model(image, strength, denoise=denoise)
        output_format = DOWNLOAD_FORMATS[download]
        if output_format == "tiff":  # the enhanced floats, kept at 16 bits whatever the upload's depth
            enhanced = dataclasses.replace(enhanced, bit_depth=16)
        target = self._new_output_path(Path(path).stem, FORMAT_SUFFIXES[output_format])
        write_image(target, enhanced)
        return image, enhanced, illumination, target

    def preview(self, path: str, strength: float | None, denoise: bool = False) -> tuple[DecodedImage, DecodedImage, np.ndarray]:
        """A quick result on the image reduced to `PREVIEW_MAX_SIDE`: (reduced input, enhanced, illumination)."""
        image = self.read(path)
        reduced = resize_for_display(image.pixels, PREVIEW_MAX_SIDE).astype(np.float32) / EIGHT_BIT_MAX
        small = DecodedImage(reduced, None, 8, image.grayscale)
        enhanced, illumination = self.run_model(small, strength, fast=True, denoise=denoise)
        return small, enhanced, illumination

    def _run_video(self, source: Path, target: Path, strength: float | None, fast: bool, denoise: bool,
                   on_start, on_frame) -> tuple[int, list[str]]:
        from cliplit.video.enhancer import VideoEnhancer

        notes: list[str] = []
        video = VideoEnhancer(self.engine(fast, denoise), strength=strength, max_megapixels=self.max_video_megapixels,
                              max_seconds=self.max_video_seconds, limit_options=(None, None))
        frames = video.enhance_file(source, target, on_start=on_start, on_frame=on_frame, on_note=notes.append,
                                    on_denoise=notes.append)
        return frames, notes

    def enhance_video_file(self, path: str, strength: float | None, denoise: bool = False, fast: bool = False,
                           on_start=None, on_frame=None) -> tuple[Path, int, list[str]]:
        """
        Enhance an uploaded video (`cliplit enhance clip.mp4`'s rules, within the app's limits) into a new
        file of the same container. `on_start(estimated_frames)` and `on_frame()` report progress.
        Returns (output path, frames written, notes: streams left out, what "Clean the shadows" did).
        """
        source = Path(path)
        self._check_upload(source, "video")
        if not is_video_file(source):
            raise UploadError(f"{source.name}: not a video file (one of {' '.join(VIDEO_EXTENSIONS)})")
        target = self._new_output_path(source.stem, source.suffix.lower())
        try:
            return (target, *self.run_video(source, target, strength, fast, denoise, on_start, on_frame))
        except CLIPLITError as error:
            shutil.rmtree(target.parent, ignore_errors=True)
            raise UploadError(_named_by_upload(error, source)) from None

    def _new_output_path(self, stem: str, suffix: str = OUTPUT_SUFFIX) -> Path:
        self._delete_old_outputs()
        folder = self.output_dir / uuid.uuid4().hex
        folder.mkdir(parents=True)
        return folder / f"{stem}_enhanced{suffix}"

    def _delete_old_outputs(self) -> None:
        if not self.output_dir.is_dir():
            return
        cutoff = time.time() - OUTPUT_MAX_AGE_S
        for folder in self.output_dir.iterdir():
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)


def resize_for_display(pixels: np.ndarray, max_side: int) -> np.ndarray:
    """(H, W[, C]) float in [0, 1] -> uint8, reduced so that its longer side is at most `max_side`."""
    array = (np.clip(pixels, 0.0, 1.0) * EIGHT_BIT_MAX).round().astype(np.uint8)
    height, width = array.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return array
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(array).resize(size, Image.LANCZOS, reducing_gap=3.0))


def denoise_status(path: str | os.PathLike, enhanced: DecodedImage) -> str:
    """The status line on what "Clean the shadows" found and did to the upload `path` (the CLI's `note:` text), or ""."""
    note = denoise_note(Path(path).name, DENOISE_AUTO, enhanced.denoised, container_of(path))
    return f"  \nNote: {note}" if note is not None else ""


def _to_display(pixels: np.ndarray) -> np.ndarray:
    return resize_for_display(pixels, DISPLAY_MAX_SIDE)


def _describe(image: DecodedImage) -> str:
    width, height = image.size
    return f"{width} × {height} px ({width * height / PIXELS_PER_MEGAPIXEL:.1f} MP)"


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
    enhancer = DemoEnhancer(model, max_megapixels, max_file_mb, max_video_seconds, max_video_megapixels)

    def enhance_api(path: str | None, strength: float | None = None, denoise: bool = False) -> str:
        """Enhance a backlit photo at full resolution (`denoise`: clean the shadows); returns the enhanced PNG."""
        if not path:
            raise gr.Error("no image was uploaded")
        try:
            return str(enhancer.enhance_file(path, strength, denoise=bool(denoise))[3])
        except CLIPLITError as error:
            raise gr.Error(str(error), print_exception=False) from None

    def enhance_page(path: str | None, strength: float, download: str = DEFAULT_DOWNLOAD, file_path: str | None = None,
                     denoise: bool = False):
        path = file_path or path  # a RAW or HEIC file (which browsers do not show as images) comes first
        if not path:
            raise gr.Error("Upload a backlit photo first.", print_exception=False)
        start = time.perf_counter()
        try:
            image, enhanced, illumination, target = enhancer.enhance_file(path, strength, download, denoise)
        except CLIPLITError as error:
            raise gr.Error(str(error), print_exception=False) from None
        seconds = time.perf_counter() - start
        status = (
            f"**Enhanced** {_describe(image)} at strength {strength:g} in **{seconds:.2f} s** on "
            f"{enhancer.device_name}. The {download} below is full resolution, with the photo's metadata and colour profile."
        )
        status += denoise_status(path, enhanced)
        slider = (_to_display(image.pixels), _to_display(enhanced.pixels))
        return slider, _to_display(illumination), str(target), status

    def preview_page(path: str | None, strength: float, file_path: str | None = None, denoise: bool = False):
        path = file_path or path
        if not path:
            return None, None, None, ""
        start = time.perf_counter()
        try:
            small, enhanced, illumination = enhancer.preview(path, strength, denoise)
        except CLIPLITError as error:
            raise gr.Error(str(error), print_exception=False) from None
        seconds = time.perf_counter() - start
        status = (
            f"Preview at {_describe(small)} in {seconds:.2f} s. "
            "Click **Enhance** for the full-resolution result and its PNG."
        )
        slider = (_to_display(small.pixels), _to_display(enhanced.pixels))
        return slider, _to_display(illumination), None, status

    def enhance_video_page(path: str | None, strength: float, denoise: bool = False, fast: bool = False,
                           progress=gr.Progress()):
        """Enhance a backlit video (same container, timestamps, audio and subtitles); returns (video, status)."""
        if not path:
            raise gr.Error("Upload a backlit video first.", print_exception=False)
        counts = {"done": 0, "total": None}  # this call's frames: enhanced, and expected (None: unknown)

        def start(estimated: int) -> None:
            counts["total"] = estimated or None
            progress((0, counts["total"]), desc="Enhancing", unit="frames")

        def frame_done() -> None:
            counts["done"] += 1
            progress((counts["done"], counts["total"]), desc="Enhancing", unit="frames")

        started = time.perf_counter()
        try:
            target, frames, notes = enhancer.enhance_video_file(path, strength, bool(denoise), bool(fast), start, frame_done)
        except CLIPLITError as error:
            raise gr.Error(str(error), print_exception=False) from None
        seconds = time.perf_counter() - started
        status = (f"**Enhanced** {frames} frames at strength {strength:g} in **{seconds:.1f} s** "
                  f"({frames / seconds:.1f} frames/s, {'fast' if fast else 'exact'} mode) on {enhancer.device_name}. "
                  "Timestamps, audio, subtitles and metadata are kept.")
        return str(target), "  \n".join([status, *(f"Note: {note}" for note in notes)])

    examples = sorted(p for p in EXAMPLES_DIR.glob("*") if p.suffix.lower() in EXAMPLE_SUFFIXES)
    with gr.Blocks(title=TITLE, delete_cache=GRADIO_CACHE_CLEANUP) as demo:
        gr.Markdown(
            f"# {TITLE}\n"
            "Upload, paste or photograph a backlit picture (bright sky or window behind a dark subject), or give a "
            "camera RAW or HEIC file, and click **Enhance**. CLIP-LIT (Liang et al., ICCV 2023) estimates the illumination and divides it out. "
            f"Limits: {max_megapixels:g} megapixels, {max_file_mb:g} MB. Videos: the **Video** tab."
        )
        with gr.Tabs():
            with gr.Tab("Photo", id="photo"):
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
                        strength = gr.Slider(
                            *STRENGTH_RANGE,
                            value=enhancer.default_strength,
                            step=STRENGTH_STEP,
                            label="Strength (0 = unchanged, 1 = published result)",
                            elem_id="strength",
                        )
                        download_format = gr.Radio(list(DOWNLOAD_FORMATS), value=DEFAULT_DOWNLOAD, label="Download as",
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
                if examples:
                    gr.Examples([[str(path)] for path in examples], inputs=[image_in], label="Example backlit photos")
            with gr.Tab("Video", id="video"):
                gr.Markdown(
                    "A backlit video (.mp4 .mov .m4v .mkv .webm .avi), enhanced frame by frame; frame rate, timestamps, "
                    f"audio, subtitles and metadata are kept. Limits: {max_video_seconds:g} s, "
                    f"{max_video_megapixels:g} megapixels per frame, {max_file_mb:g} MB."
                )
                with gr.Row():
                    with gr.Column():
                        video_in = gr.Video(label="Backlit video", sources=["upload"], elem_id="input-video")
                        video_strength = gr.Slider(*STRENGTH_RANGE, value=enhancer.default_strength, step=STRENGTH_STEP,
                                                   label="Strength (0 = unchanged, 1 = published result)",
                                                   elem_id="video-strength")
                        video_denoise = gr.Checkbox(value=False, label="Clean the shadows", elem_id="video-denoise")
                        video_fast = gr.Checkbox(value=enhancer.device_name == "CPU",  # exact 1080p video is slow on a CPU
                                                 label="Fast mode (about 13x faster on a CPU, 48-51 dB PSNR from the exact result)",
                                                 elem_id="video-fast")
                        video_button = gr.Button("Enhance video", variant="primary", elem_id="enhance-video-button")
                    with gr.Column():
                        video_out = gr.Video(label="Enhanced video", interactive=False, elem_id="output-video")
                        video_status = gr.Markdown(elem_id="video-status")

        # The public API: image in, enhanced full-resolution PNG out, strength optional, the published pixels
        # unless `denoise` is given (its own input: the page's box is ticked by default, the API's is not).
        api_output = gr.Image(label="enhanced", type="filepath", format="png", visible=False)
        api_button = gr.Button(visible=False)
        api_denoise = gr.Checkbox(value=False, visible=False)
        api_button.click(enhance_api, [image_in, strength, api_denoise], api_output, api_name="enhance")

        page_outputs = [slider, illumination_view, download, status]
        enhance_button.click(enhance_page, [image_in, strength, download_format, file_in, denoise], page_outputs,
                             api_visibility="private")
        gr.on([image_in.change, file_in.change, strength.release, denoise.change], preview_page,
              [image_in, strength, file_in, denoise], page_outputs,
              api_visibility="private", trigger_mode="always_last")
        video_button.click(enhance_video_page, [video_in, video_strength, video_denoise, video_fast],
                           [video_out, video_status], api_name="enhance_video")
    demo.queue(default_concurrency_limit=concurrency, max_size=QUEUE_MAX_SIZE)
    demo.enhancer = enhancer  # for `close_demo`
    return demo


def close_demo(demo: gr.Blocks) -> None:
    """Stop the server and delete the results it wrote."""
    demo.close()
    demo.enhancer.close()


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
