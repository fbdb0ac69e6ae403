"""CLIP-LIT on Ray Data: `BatchEnhancer`, a callable class for `Dataset.map_batches` (one model per
actor), and `EnhancedImageDatasink`, which writes its results as `cliplit enhance` names them.

    import ray
    from cliplit.integrations.ray import BatchEnhancer, EnhancedImageDatasink

    photos = ray.data.read_binary_files("s3://bucket/backlit/", include_paths=True)
    enhanced = photos.map_batches(BatchEnhancer, fn_constructor_kwargs={"model": "clip-lit"},
                                  batch_size=8, concurrency=4, num_gpus=1)
    enhanced.write_datasink(EnhancedImageDatasink("s3://bucket/enhanced/"))

Inputs, per batch (`batch_format="numpy"`, the default):

- `bytes` (from `ray.data.read_binary_files(..., include_paths=True)`): the encoded files, decoded in the
  actor by cliplit's own reader, so the pixels are exactly those of `cliplit enhance` (EXIF orientation,
  16-bit colour, alpha, grayscale) and a file that is not an image becomes an error, not a failed job;
- or `image` (from `ray.data.read_images(..., include_paths=True)`): arrays decoded by Ray (Pillow, no
  EXIF orientation; 16-bit colour PNGs come as 8-bit), of any sizes within one batch.

Output: `image` holds each enhanced image as an (H, W, C) array with the input's channels (C = 1 gray,
2 gray + alpha, 3 RGB, 4 RGBA), uint8, or uint16 for 16-bit inputs; `bit_depth` says which (8 or 16);
`path` and every other column pass through; `cliplit_settings` says what the image was made with (the model's
fingerprint and the engine settings, as JSON), for `EnhancedImageDatasink`'s resuming. Ray holds one dtype per column: a dataset that mixes 8-bit
and 16-bit files needs `mixed_bit_depths=True`, which makes `image` uint16 for every row (8-bit rows
keep their 0-255 codes; `bit_depth` tells them apart, and `EnhancedImageDatasink` writes each at its
depth). A row that cannot be enhanced is logged
(`error: <file>: <reason>`, logger `cliplit.integrations.ray`) and dropped, or with `keep_errors=True`
kept with its message in an `error` column and an empty image.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
from pathlib import PurePosixPath

import numpy as np

from ..engine.settings import AUTO_DEVICE, EngineSettings, engine_settings
from ..errors import CLIPLITError, ImageReadError, SettingsError, display_name, first_line
from ..imaging import DEFAULT_MAX_MEGAPIXELS
from ..imaging.files import OUTPUT_SUFFIX
from ..imaging.formats import encode_png16
from ..interfaces.resume import OTHER_INPUT, RECORD_FOLDER, Provenance, compare_record, record_name, record_text
from ..safety.outputs import atomic_write
from . import require_extra

ray_data = require_extra("ray.data", "ray", "cliplit.integrations.ray")

IMAGE_COLUMN = "image"
BYTES_COLUMN = "bytes"
PATH_COLUMN = "path"
BIT_DEPTH_COLUMN = "bit_depth"
ERROR_COLUMN = "error"
SETTINGS_COLUMN = "cliplit_settings"
EMPTY_IMAGE_SHAPE = (0, 0, 3)
logger = logging.getLogger(__name__)


def decode_file_bytes(data: bytes, name: str, max_megapixels: float | None = DEFAULT_MAX_MEGAPIXELS):
    """
    The bytes of an image file -> `DecodedImage`, through `cliplit.imaging.files.read_image` (so every
    format and mode `cliplit enhance` reads, read the same way). `name` (the file's path, with its
    suffix) names the file in errors. Raises `ImageReadError`.
    """
    from ..imaging.files import read_image

    suffix = PurePosixPath(name).suffix
    with tempfile.TemporaryDirectory(prefix="cliplit-ray-") as folder:
        local = os.path.join(folder, f"input{suffix}")
        with open(local, "wb") as handle:
            handle.write(data)
        try:
            decoded = read_image(local, max_megapixels=max_megapixels)
        except ImageReadError as error:
            raise ImageReadError(str(error).replace(display_name(local), display_name(name))) from None
    if decoded.note:
        decoded.note = decoded.note.replace(display_name(local), display_name(name))
    return decoded


def _stacked(arrays: list[np.ndarray]) -> np.ndarray:
    """One column: a stacked array when every image has one shape and dtype, else an object array of arrays."""
    if arrays and all(a.shape == arrays[0].shape and a.dtype == arrays[0].dtype for a in arrays):
        return np.stack(arrays)
    column = np.empty(len(arrays), dtype=object)
    for index, array in enumerate(arrays):
        column[index] = array
    return column


class BatchEnhancer:
    """
    Enhances the images of a Ray Data batch (see the module docstring). Ray builds one per actor
    (`map_batches(BatchEnhancer, fn_constructor_kwargs={...}, concurrency=N)`), which loads the model once.

    Args:
        model: any `--model` form: a published model's name, a `from_pretrained` folder, an authors'
            `.pth` file or a Hub id (default: $CLIPLIT_MODEL, else clip-lit). On a cluster, every node
            must reach it (a published name or Hub id is downloaded once per node into its cache).
        settings: the engine's `EngineSettings` (default: the published network's, exact mode); its fields
            may also be given as keyword arguments (`mode="fast"`, `precision="bf16"`, ...). A device of None
            or "auto" is the actor's GPU when it has one (`num_gpus=1`), else the CPU.
        max_megapixels: refuse larger files (read from `bytes`) from their header.
        keep_errors: keep failed rows, with an empty image and their message in `error`.
        mixed_bit_depths: for datasets mixing 8-bit and 16-bit files: `image` is uint16 in every row, the
            8-bit codes unchanged (see the module docstring).
    """

    def __init__(self, model=None, settings: EngineSettings | None = None, *,
                 max_megapixels: float | None = DEFAULT_MAX_MEGAPIXELS, keep_errors: bool = False,
                 mixed_bit_depths: bool = False, **engine_changes):
        settings = engine_settings(settings, **engine_changes)  # checked before the model is loaded
        from ..engine.enhancer import Enhancer
        from ..engine.runtime import resolve_device
        from ..interfaces.resume import engine_result_settings
        from ..model.loading import load_network

        device = resolve_device(settings.device or AUTO_DEVICE)
        network = load_network(model)
        self.enhancer = Enhancer(network, settings.replace(device=str(device)))
        self.settings = json.dumps(engine_result_settings(network, settings),  # what every image here is made with
                                   sort_keys=True)
        self.max_megapixels = max_megapixels
        self.keep_errors = keep_errors
        self.mixed_bit_depths = mixed_bit_depths

    @property
    def device(self):
        return self.enhancer.device

    def enhance_one(self, image=None, data: bytes | None = None, name: str = "image") -> tuple[np.ndarray, int]:
        """One decoded array (`image`) or encoded file (`data`) -> (the enhanced (H, W, C) array, uint8 or
        uint16; its bit depth)."""
        from ..imaging.codec import decode_array, encode_array

        decoded = decode_file_bytes(data, name, self.max_megapixels) if data is not None else decode_array(image)
        if decoded.note:
            logger.info("note: %s", decoded.note)
        enhanced, _ = self.enhancer.enhance_decoded(decoded)
        array = encode_array(enhanced)
        return (array[:, :, None] if array.ndim == 2 else array), enhanced.bit_depth

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A batch (dict of columns) -> the same rows (failed ones dropped unless `keep_errors`), `image` enhanced."""
        if IMAGE_COLUMN not in batch and BYTES_COLUMN not in batch:
            raise SettingsError(f"BatchEnhancer needs an {IMAGE_COLUMN!r} column (read_images) or a {BYTES_COLUMN!r} "
                                f"column (read_binary_files); the batch has {', '.join(batch) or 'no columns'}")
        source = BYTES_COLUMN if BYTES_COLUMN in batch else IMAGE_COLUMN
        column = batch[source]
        paths = batch.get(PATH_COLUMN)
        images, depths, errors, kept = [], [], [], []
        for index in range(len(column)):
            name = str(paths[index]) if paths is not None else f"row {index}"
            try:
                if source == BYTES_COLUMN:
                    enhanced, depth = self.enhance_one(data=bytes(column[index]), name=name)
                else:
                    enhanced, depth = self.enhance_one(image=np.asarray(column[index]), name=name)
                message = ""
            except CLIPLITError as error:
                enhanced, depth, message = None, 8, str(error)
            except (ValueError, TypeError, RuntimeError, MemoryError) as error:
                enhanced, depth, message = None, 8, f"{display_name(name)}: enhancement failed: {first_line(error)}"
            if message:
                logger.warning("error: %s", message)
                if not self.keep_errors:
                    continue
                enhanced = np.zeros(EMPTY_IMAGE_SHAPE, np.uint8)
            if self.mixed_bit_depths:
                enhanced = enhanced.astype(np.uint16)
            kept.append(index)
            images.append(enhanced)
            depths.append(depth)
            errors.append(message)
        output = {key: np.asarray(value)[kept] for key, value in batch.items() if key not in (IMAGE_COLUMN, BYTES_COLUMN)}
        output[IMAGE_COLUMN] = _stacked(images)
        output[BIT_DEPTH_COLUMN] = np.asarray(depths, dtype=np.uint8)
        output[SETTINGS_COLUMN] = np.asarray([self.settings] * len(kept), dtype=object)
        if self.keep_errors:
            output[ERROR_COLUMN] = np.asarray(errors, dtype=object)
        return output


def png_bytes(array: np.ndarray, bit_depth: int | None = None) -> bytes:
    """An enhanced array (H, W[, C], uint8 or uint16) as PNG bytes of `bit_depth` bits (default: the array's),
    encoded as `cliplit enhance` writes it (Pillow for 8 bits, `cliplit.imaging.formats.encode_png16` for 16 bits)."""
    if bit_depth == 8:
        array = array.astype(np.uint8)  # an 8-bit row of a block Ray stored as uint16: the codes are unchanged
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.dtype == np.uint16:
        return encode_png16(array)
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def output_name(path: str) -> str:
    """The file `cliplit enhance` writes for an input: `<stem>.png`."""
    return f"{PurePosixPath(path).stem}{OUTPUT_SUFFIX}"


class EnhancedImageDatasink(ray_data.Datasink):
    """
    Writes the `image` column as `<output>/<stem of path>.png`, the names and bytes `cliplit enhance`
    writes, to a local folder or object storage (any pyarrow filesystem: `s3://`, `gs://`, ...).
    An existing output is skipped (a rerun completes an interrupted job) only when its record says it was
    made with the row's `cliplit_settings` (the same model and settings, `cliplit.interfaces.resume`);
    one made otherwise, or with no record, is kept and counted in one logged line; `overwrite=True`
    redoes both. Each output's record is written after it (`.cliplit/<name>.json` beside it). Local
    files are written to a temporary name and renamed, so an interrupted job leaves no partial file. Rows
    with an `error` (`keep_errors=True`) are not written. Inputs must have distinct stems (as in one
    camera folder): two inputs named `a.jpg` and `a.png` would both be written as `a.png`.
    """

    def __init__(self, output: str, *, overwrite: bool = False, filesystem=None):
        self.output = output
        self.overwrite = overwrite
        self.filesystem = filesystem

    def _resolve(self):
        import pyarrow.fs

        if self.filesystem is not None:
            return self.filesystem, self.output
        if "://" in self.output:
            return pyarrow.fs.FileSystem.from_uri(self.output)
        return pyarrow.fs.LocalFileSystem(), os.path.abspath(self.output)

    def on_write_start(self, schema=None) -> None:
        filesystem, root = self._resolve()
        filesystem.create_dir(root, recursive=True)

    @staticmethod
    def _put(filesystem, target: str, data: bytes, local: bool) -> None:
        """Write `data` to `target`, never as a partial file."""
        if local:
            with atomic_write(target) as partial:
                partial.write_bytes(data)
        else:  # object stores publish an object only when its upload completes
            with filesystem.open_output_stream(target) as stream:
                stream.write(data)

    @staticmethod
    def _made_the_same_way(filesystem, record: str, settings: str | None, source: str) -> Provenance:
        """Whether the existing output whose record is `record` was made from `source` with the row's `settings`
        (rows without settings, from code other than `BatchEnhancer`: taken as the same, as before records)."""
        if settings is None:
            return Provenance(True)
        try:
            with filesystem.open_input_stream(record) as stream:
                text = stream.read().decode("utf-8", "replace")
        except (OSError, FileNotFoundError):
            text = None
        return compare_record(text, json.loads(settings), source)

    def write(self, blocks, ctx) -> dict[str, int]:
        import pyarrow.fs
        from ray.data.block import BlockAccessor

        filesystem, root = self._resolve()
        local = isinstance(filesystem, pyarrow.fs.LocalFileSystem)
        counts = {"written": 0, "skipped": 0, "kept": 0}
        differences: set[str] = set()
        for block in blocks:
            for row in BlockAccessor.for_block(block).iter_rows(public_row_format=True):
                if row.get(ERROR_COLUMN):
                    continue
                if PATH_COLUMN not in row:
                    raise SettingsError("EnhancedImageDatasink needs the input paths: read with include_paths=True")
                name = output_name(row[PATH_COLUMN])
                target = f"{root.rstrip('/')}/{name}"
                record = f"{root.rstrip('/')}/{record_name(name)}"
                settings = row.get(SETTINGS_COLUMN)
                if not self.overwrite and filesystem.get_file_info(target).type != pyarrow.fs.FileType.NotFound:
                    made = self._made_the_same_way(filesystem, record, settings, str(row[PATH_COLUMN]))
                    if made.same:
                        logger.info("%s: exists, made with this model and these settings: kept (overwrite=True redoes it)",
                                    display_name(target))
                        counts["skipped"] += 1
                    else:
                        counts["kept"] += 1
                        differences.update(made.differences)
                    continue
                if settings is not None and filesystem.get_file_info(record).type == pyarrow.fs.FileType.File:
                    filesystem.delete_file(record)  # no record while the output is being (re)made
                self._put(filesystem, target, png_bytes(np.asarray(row[IMAGE_COLUMN]), row.get(BIT_DEPTH_COLUMN)), local)
                if settings is not None:
                    filesystem.create_dir(f"{root.rstrip('/')}/{RECORD_FOLDER}", recursive=True)
                    self._put(filesystem, record, record_text(json.loads(settings), str(row[PATH_COLUMN])).encode(), local)
                counts["written"] += 1
        if counts["kept"]:
            logger.warning("error: %s: %d existing output(s) not made with this model and these settings (%s): kept, not "
                           "redone; overwrite=True redoes them, or choose another output", display_name(root), counts["kept"],
                           ", ".join(sorted("made from another input" if name == OTHER_INPUT else name for name in differences)))
        return counts


__all__ = ["BatchEnhancer", "EnhancedImageDatasink", "decode_file_bytes", "output_name", "png_bytes"]
