"""The demo app's service: one loaded model behind a web page, as `app.py` (the Gradio page) calls it.

`EnhancementService` holds the model, its engines (one `EnhancerCache` keyed by `EngineSettings`: exact
mode for the result, fast mode for the preview, each with "Clean the shadows" off or on), the app's
limits, the reading of uploads (`read_image`, as `cliplit enhance` reads them), the output files
(`write_image`, each in a folder of its own under `output_dir`, deleted after `OUTPUT_MAX_AGE_S` and by
`close`) and the wrapping of its two GPU calls for Hugging Face ZeroGPU.

It imports neither gradio (the page is the script's) nor `spaces` (ZeroGPU's package): the script hands
in `gpu`, a callable `gpu(function, duration_s) -> function` that wraps each GPU call (`spaces.GPU` on
ZeroGPU). Every refused upload raises `UploadError`, one line naming the uploaded file's own name.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..engine.enhancer import Enhancer, EnhancerCache
from ..engine.settings import AUTO_DEVICE, DENOISE_AUTO, DENOISE_OFF, EngineSettings
from ..errors import CLIPLITError, ImageReadError, display_name
from ..imaging import DEFAULT_MAX_MEGAPIXELS
from ..imaging.codec import EIGHT_BIT_MAX, DecodedImage
from ..imaging.files import read_image, write_image
from ..imaging.formats import FORMAT_SUFFIXES
from ..model.architecture import resolve_strength
from ..video.reading import image_format_inside
from ..video.settings import VIDEO_EXTENSIONS, is_video_file

DOWNLOAD_FORMATS = ("png", "jpeg", "tiff")  # the formats a result is offered in (cliplit's output format names)
DEFAULT_MAX_FILE_MB = 50
BYTES_PER_MB = 1 << 20
DEFAULT_MAX_VIDEO_SECONDS = 60.0
DEFAULT_MAX_VIDEO_MEGAPIXELS = 2.1  # 1920 x 1080 frames
PREVIEW_MAX_SIDE = 512  # the instant preview runs at this size
OUTPUT_MAX_AGE_S = 3600  # results older than this are deleted from `output_dir`
GPU_DURATION_S = 60  # the longest one photo may hold the GPU (ZeroGPU's `duration`)
VIDEO_GPU_DURATION_S = 120  # ... and one video, enhanced in one GPU call
OUTPUT_FOLDER_PREFIX = "cliplit-app-"

GpuWrapper = Callable[[Callable, float], Callable]  # (function, duration in seconds) -> the function run on the GPU


class UploadError(CLIPLITError):
    """An upload the app refuses: unreadable, or over the size limits. The message is one line."""


def resize_for_display(pixels: np.ndarray, max_side: int) -> np.ndarray:
    """(H, W[, C]) float in [0, 1] -> uint8, reduced so that its longer side is at most `max_side`."""
    array = (np.clip(pixels, 0.0, 1.0) * EIGHT_BIT_MAX).round().astype(np.uint8)
    height, width = array.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return array
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(array).resize(size, Image.LANCZOS, reducing_gap=3.0))


def _named_by_upload(error: Exception | str, path: Path) -> str:
    """`error`'s message with the upload's temporary path replaced by the file's own name."""
    return str(error).replace(display_name(path), display_name(path.name))


@dataclass
class EnhancementService:
    """
    The loaded model (a `CLIPLITModel`, on the device it runs on), its engines and the app's limits; one per
    app. `gpu`: None where the model's device is always there (a local machine, a GPU Space); on ZeroGPU,
    ZeroGPU's wrapper: the GPU is then attached only inside the two calls it wraps (`run_model`, `run_video`).
    """

    model: object
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS
    max_file_mb: float = DEFAULT_MAX_FILE_MB
    max_video_seconds: float = DEFAULT_MAX_VIDEO_SECONDS
    max_video_megapixels: float = DEFAULT_MAX_VIDEO_MEGAPIXELS
    gpu: GpuWrapper | None = None
    output_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix=OUTPUT_FOLDER_PREFIX)))
    engines: EnhancerCache = field(init=False, repr=False)

    def __post_init__(self):
        self.engines = EnhancerCache(self.model)
        wrap = self.gpu or (lambda function, duration_s: function)
        self.run_model = wrap(self._run_model, GPU_DURATION_S)
        self.run_video = wrap(self._run_video, VIDEO_GPU_DURATION_S)

    @property
    def device_name(self) -> str:
        """"GPU", or the device type of the model ("CPU"), as the page names it."""
        device = next(self.model.parameters()).device
        return "GPU" if self.gpu is not None or device.type == "cuda" else device.type.upper()

    @property
    def default_strength(self) -> float:
        return resolve_strength(self.model.config)

    def close(self) -> None:
        """Delete every result this service wrote (its output folder)."""
        shutil.rmtree(self.output_dir, ignore_errors=True)

    # ------------------------------------------------------------------------------------ engines
    def settings(self, fast: bool, denoise: bool) -> EngineSettings:
        """
        The engine settings of a call: exact mode, or fast mode for the preview (`fast`); `denoise`: clean the
        shadows (`denoise="auto"`, docs/denoise.md). A server keeps no activation buffers between uploads
        (they would hold ~1 kB per pixel of the largest photo seen). On ZeroGPU the device is "auto", resolved
        inside the GPU call (CUDA when attached).
        """
        return EngineSettings(mode="fast" if fast else "exact", denoise=DENOISE_AUTO if denoise else DENOISE_OFF,
                              keep_workspace=False, device=AUTO_DEVICE if self.gpu is not None else None)

    def engine(self, fast: bool, denoise: bool = False) -> Enhancer:
        """The engine for `settings(fast, denoise)`: from `engines`, built once per settings."""
        settings = self.settings(fast, denoise)
        if self.gpu is not None:
            # On ZeroGPU the GPU is attached only while a wrapped call runs (in a worker ZeroGPU starts for it):
            # an engine built outside a call would put the network on the CPU (the main process may not touch
            # CUDA), and one kept in a call's worker is gone with it. So each call builds its own, here, on
            # "auto" (the GPU it was given). Building one moves a ~1 MB network: nothing next to an image.
            return Enhancer(self.model, settings)
        return self.engines.get(settings)

    # ------------------------------------------------------------------------------------ photos
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
            image = read_image(path, max_megapixels=self.max_megapixels)
        except ImageReadError as error:
            raise UploadError(_named_by_upload(error, path)) from None
        if image.note:  # e.g. malformed metadata left out: named by the upload's own name
            image.note = _named_by_upload(image.note, path)
        return image

    def _run_model(self, image: DecodedImage, strength: float | None, fast: bool = False,
                   denoise: bool = False) -> tuple[DecodedImage, np.ndarray]:
        """The GPU call of a photo (`run_model` is it, wrapped by `gpu`): (enhanced image, (H, W) illumination map)."""
        try:  # the engine tiles large images itself (bounded memory)
            return self.engine(fast, denoise).enhance_decoded(image, strength)
        except ValueError as error:
            raise UploadError(str(error)) from None

    def _enhance_upload(self, path: Path, image: DecodedImage, strength: float | None, fast: bool,
                        denoise: bool) -> tuple[DecodedImage, np.ndarray]:
        """`run_model` on the upload `path`'s image; an image the engine refuses (smaller than 2 x 2 pixels)
        raises `UploadError` naming the upload."""
        try:
            return self.run_model(image, strength, fast, denoise)
        except UploadError as error:
            raise UploadError(f"{display_name(path.name)}: {error}") from None

    def enhance_file(self, path: str | os.PathLike, strength: float | None, output_format: str = "png",
                     denoise: bool = False) -> tuple[DecodedImage, DecodedImage, np.ndarray, Path]:
        """
        Read (any input `cliplit enhance` reads: HEIC, RAW, ...), enhance at full resolution, write the
        result as `output_format` (one of `DOWNLOAD_FORMATS`) with the upload's metadata and ICC profile;
        "tiff" keeps 16 bits whatever the upload's depth. `denoise`: clean the shadows (docs/denoise.md).
        Returns (input, enhanced, illumination map (H, W) float32, path of the written file); the input's
        `note` says what the user should know (malformed metadata left out, also by the encoder).
        """
        if output_format not in DOWNLOAD_FORMATS:
            raise UploadError(f"unknown download format {output_format!r} (one of {', '.join(DOWNLOAD_FORMATS)})")
        image = self.read(path)
        enhanced, illumination = self._enhance_upload(Path(path), image, strength, False, denoise)
        if output_format == "tiff":  # the enhanced floats, kept at 16 bits whatever the upload's depth
            enhanced = dataclasses.replace(enhanced, bit_depth=16)
        target = self._new_output_path(Path(path).stem, FORMAT_SUFFIXES[output_format])
        written_notes = write_image(target, enhanced)  # metadata an encoder refused: the pixels are written without it
        if written_notes:
            upload = display_name(Path(path).name)
            image.note = "; ".join([*filter(None, [image.note]), *(f"{upload}: {note}" for note in written_notes)])
        return image, enhanced, illumination, target

    def preview(self, path: str | os.PathLike, strength: float | None,
                denoise: bool = False) -> tuple[DecodedImage, DecodedImage, np.ndarray]:
        """A quick result in fast mode on the image reduced to `PREVIEW_MAX_SIDE`: (reduced input, enhanced,
        illumination map (h, w) float32)."""
        image = self.read(path)
        reduced = resize_for_display(image.pixels, PREVIEW_MAX_SIDE).astype(np.float32) / EIGHT_BIT_MAX
        small = DecodedImage(reduced, None, 8, image.grayscale)
        enhanced, illumination = self._enhance_upload(Path(path), small, strength, True, denoise)
        return small, enhanced, illumination

    # ------------------------------------------------------------------------------------ videos
    def _run_video(self, source: Path, target: Path, strength: float | None, fast: bool, denoise: bool,
                   on_start, on_frame) -> tuple[int, list[str]]:
        """The GPU call of a whole video (`run_video` is it, wrapped by `gpu`): (frames written, notes)."""
        from ..video.enhancer import VideoEnhancer

        notes: list[str] = []
        video = VideoEnhancer(self.engine(fast, denoise), strength=strength, max_megapixels=self.max_video_megapixels,
                              max_seconds=self.max_video_seconds, limit_options=(None, None))
        def note(text: str) -> None:  # named by the upload's own name, as the photos' notes are
            notes.append(_named_by_upload(text, source))

        frames = video.enhance_file(source, target, on_start=on_start, on_frame=on_frame, on_note=note, on_denoise=note)
        return frames, notes

    def enhance_video_file(self, path: str | os.PathLike, strength: float | None, denoise: bool = False,
                           fast: bool = False, on_start: Callable[[int], None] | None = None,
                           on_frame: Callable[[], None] | None = None) -> tuple[Path, int, list[str]]:
        """
        Enhance an uploaded video (`cliplit enhance clip.mp4`'s rules, within the app's limits) into a new
        file of the same container. `on_start(estimated_frames)` and `on_frame()` report progress.
        Returns (output path, frames written, notes: streams left out, what "Clean the shadows" did).
        """
        source = Path(path)
        self._check_upload(source, "video")
        if not is_video_file(source):
            raise UploadError(f"{source.name}: not a video file (one of {' '.join(VIDEO_EXTENSIONS)})")
        image_format = image_format_inside(source)  # a photo named .mp4: the Photo tab keeps its metadata
        if image_format is not None:
            raise UploadError(f"{source.name}: is an image ({image_format}), not a video: use the Photo tab")
        target = self._new_output_path(source.stem, source.suffix.lower())
        try:
            return (target, *self.run_video(source, target, strength, fast, denoise, on_start, on_frame))
        except CLIPLITError as error:
            shutil.rmtree(target.parent, ignore_errors=True)
            raise UploadError(_named_by_upload(error, source)) from None

    # ------------------------------------------------------------------------------------ output files
    def _new_output_path(self, stem: str, suffix: str) -> Path:
        """`output_dir/<new folder>/<stem>_enhanced<suffix>`, after deleting the results older than `OUTPUT_MAX_AGE_S`."""
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


__all__ = ["DEFAULT_MAX_FILE_MB", "DEFAULT_MAX_VIDEO_MEGAPIXELS", "DEFAULT_MAX_VIDEO_SECONDS", "DOWNLOAD_FORMATS",
           "GPU_DURATION_S", "PREVIEW_MAX_SIDE", "VIDEO_GPU_DURATION_S", "EnhancementService", "GpuWrapper", "UploadError",
           "resize_for_display"]
