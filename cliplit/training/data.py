"""Training data for CLIP-LIT: unpaired backlit and well-lit images (`cliplit.training.data`).

Sources: a folder of images in any format Pillow reads (searched recursively), or a `datasets`
dataset (an `imagefolder` or a Hub dataset, only if the optional `datasets` package is installed).
Unreadable files are reported and skipped; a source without a readable image is a one-line error.

Workers only decode and resize (to a uint8 tensor); augmentation and everything CLIP runs batched
on the training device (see `random_augment`). `BatchStreams` draws the training batches from
deterministic per-stream permutations (`stream_indices`), resumable from a saved position.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from ..errors import DataError
from ..imaging.codec import EIGHT_BIT_MAX
from ..imaging.files import image_extensions
from ..safety.reading import walk_files

logger = logging.getLogger(__name__)

RESAMPLE = Image.Resampling.LANCZOS  # the authors resized with PIL's ANTIALIAS (= LANCZOS)
HFLIP_P = 0.5
VFLIP_P = 0.5
TRANSPOSE_P = 0.5
ROTATE_P = 0.3
ZOOM_P = 0.3
MAX_ROTATION_DEG = 90.0
PROMPT_ZOOM_RANGE = (0.5, 1.5)  # the authors' prompt loaders
ENHANCE_ZOOM_RANGE = (0.7, 1.3)  # the authors' enhancement loader
STREAM_NAMES = ("backlit_prompt", "welllit_prompt", "backlit_enhance")  # the uses of the data, one batch stream each
STREAM_SEED_STRIDE = 1_000_003


def list_image_files(folder: str | Path) -> list[Path]:
    """Sorted image files under `folder` (recursive, by extension); errors if the folder is missing or has none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    extensions = image_extensions()
    files = sorted(p for p in walk_files(folder) if p.suffix.lower() in extensions)  # loop-safe, regular files only
    if not files:
        raise DataError(f"{folder}: no image files found (expected files Pillow can read, e.g. .png, .jpg)")
    return files


def check_readable(files: Sequence[Path], what: str) -> list[Path]:
    """Keep the files Pillow can decode; report each unreadable one; error if none is left."""
    readable = []
    for path in files:
        try:
            with Image.open(path) as image:
                image.load()
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
            logger.warning("skipping unreadable image %s: %s", path, err)
            continue
        readable.append(path)
    if not readable:
        raise DataError(f"{what}: none of the {len(files)} image files could be read")
    return readable


class FolderImages:
    """Images from a list of files: `load(i)` -> RGB PIL image, `name(i)` -> file path."""

    def __init__(self, files: Sequence[Path]):
        self.files = list(files)

    def __len__(self) -> int:
        return len(self.files)

    def name(self, index: int) -> str:
        return str(self.files[index])

    def load(self, index: int) -> Image.Image:
        path = self.files[index]
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError) as err:
            raise DataError(f"{path}: cannot be read as an image ({err})") from err


class HFDatasetImages:
    """Images from a `datasets.Dataset` column, restricted to `indices`."""

    def __init__(self, dataset, image_column: str, indices: Sequence[int], label: str):
        self.dataset = dataset
        self.image_column = image_column
        self.indices = list(indices)
        self.label = label

    def __len__(self) -> int:
        return len(self.indices)

    def name(self, index: int) -> str:
        return f"{self.label}[{self.indices[index]}]"

    def load(self, index: int) -> Image.Image:
        image = self.dataset[self.indices[index]][self.image_column]
        if not isinstance(image, Image.Image):
            raise DataError(f"{self.name(index)}: column {self.image_column!r} does not hold an image")
        return image.convert("RGB")


def folder_source(folder: str | Path, what: str) -> FolderImages:
    """A readable-image source for a folder (unreadable files reported and skipped)."""
    return FolderImages(check_readable(list_image_files(folder), f"{what} folder {folder}"))


def dataset_sources(
    dataset_name: str,
    data_dir: str | None,
    image_column: str,
    label_column: str,
    backlit_label: str,
    welllit_label: str,
    cache_dir: str | None = None,
) -> tuple[HFDatasetImages, HFDatasetImages]:
    """
    Backlit and well-lit sources from a `datasets` dataset: `dataset_name` is "imagefolder" (with
    `data_dir` holding one sub-folder per class, e.g. backlit/ and welllit/) or a Hub dataset id.
    Rows are split by `label_column` (class names are matched for ClassLabel columns).
    """
    try:
        import datasets
    except ImportError as err:
        raise DataError(f"{dataset_name}: loading a dataset needs the optional 'datasets' package (pip install datasets)") from err
    dataset = datasets.load_dataset(dataset_name, data_dir=data_dir, cache_dir=cache_dir, split="train")
    for column in (image_column, label_column):
        if column not in dataset.column_names:
            raise DataError(f"{dataset_name}: no column {column!r} (columns: {', '.join(dataset.column_names)})")
    feature = dataset.features[label_column]
    labels = dataset[label_column]
    if hasattr(feature, "int2str"):
        labels = [feature.int2str(v) for v in labels]
    labels = [str(v) for v in labels]
    sources = []
    for wanted in (backlit_label, welllit_label):
        indices = [i for i, v in enumerate(labels) if v == wanted]
        if not indices:
            raise DataError(f"{dataset_name}: no row has {label_column} == {wanted!r} (found: {sorted(set(labels))})")
        sources.append(HFDatasetImages(dataset, image_column, indices, f"{dataset_name}:{wanted}"))
    return sources[0], sources[1]


def pil_to_uint8_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """RGB PIL image -> (3, size, size) uint8 tensor, resized (no crop) like the authors' loaders."""
    if image.size != (size, size):
        image = image.resize((size, size), RESAMPLE)
    array = np.asarray(image, dtype=np.uint8).copy()
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


class ResizedImages(Dataset):
    """Torch dataset: item i -> (uint8 tensor (3, size, size), i)."""

    def __init__(self, source, size: int):
        self.source = source
        self.size = size

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return pil_to_uint8_tensor(self.source.load(index), self.size), index


class CenterCroppedImages(ResizedImages):
    """
    Torch dataset for CLIP embeddings of whole training images: item i -> (uint8 tensor (3, size, size), i),
    the image's shorter side resized to `size` (bicubic) and the centre cropped, as CLIP's own
    preprocessing (and RAVE's embedding extraction) does.
    """

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.source.load(index)
        scale = self.size / min(image.size)
        resized = image.resize((max(self.size, round(image.width * scale)), max(self.size, round(image.height * scale))),
                               Image.Resampling.BICUBIC)
        left, top = (resized.width - self.size) // 2, (resized.height - self.size) // 2
        cropped = resized.crop((left, top, left + self.size, top + self.size))
        return torch.from_numpy(np.asarray(cropped, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous(), index


def stream_indices(length: int, seed: int, start_item: int, global_batch: int, rank: int, per_process: int) -> Iterator[list[int]]:
    """
    Deterministic infinite batches over `length` items: the concatenation of epoch permutations
    (epoch e is randperm(length) with seed `seed + e`), read `global_batch` items at a time from
    position `start_item`; yields this process's slice `[rank * per_process, (rank + 1) * per_process)`
    of each global batch (so a resumed run continues exactly where it stopped).
    """
    if length == 0:
        raise DataError("cannot draw batches from an empty dataset")
    cache: dict[int, torch.Tensor] = {}

    def item(position: int) -> int:
        epoch, offset = divmod(position, length)
        if epoch not in cache:
            cache.clear()
            generator = torch.Generator().manual_seed(seed + epoch)
            cache[epoch] = torch.randperm(length, generator=generator)
        return int(cache[epoch][offset])

    position = start_item
    while True:
        first = position + rank * per_process
        yield [item(first + k) for k in range(per_process)]
        position += global_batch


class BatchStreams:
    """
    Infinite, resumable batch streams, one per use of the data (`STREAM_NAMES`), read by DataLoader
    workers from `stream_indices`. `positions` (name -> items drawn so far by all processes; the run's
    `Progress.stream_items`) is advanced in place, so a checkpoint of it resumes every stream exactly;
    `per_process` (name -> batch size per process) may change between stages: the stream then restarts
    its loader at its current position.
    """

    def __init__(self, datasets: dict[str, Dataset], per_process: dict[str, int], positions: dict[str, int], accelerator,
                 seed: int, num_workers: int):
        self.datasets, self.per_process, self.positions = datasets, per_process, positions
        self.accelerator, self.seed, self.num_workers = accelerator, seed, num_workers
        self.iterators: dict[str, tuple[int, Iterator]] = {}

    def next(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Next batch of stream `name`: (float (B, 3, S, S) in [0, 1] on the device, long indices (B,))."""
        per_process = self.per_process[name]
        if name not in self.iterators or self.iterators[name][0] != per_process:
            dataset = self.datasets[name]
            sampler = stream_indices(
                len(dataset),
                seed=self.seed + STREAM_SEED_STRIDE * (STREAM_NAMES.index(name) + 1),
                start_item=self.positions[name],
                global_batch=per_process * self.accelerator.num_processes,
                rank=self.accelerator.process_index,
                per_process=per_process,
            )
            loader = DataLoader(dataset, batch_sampler=sampler, num_workers=self.num_workers,
                                pin_memory=self.accelerator.device.type == "cuda")
            self.iterators[name] = (per_process, iter(loader))
        pixels, indices = next(self.iterators[name][1])
        self.positions[name] += per_process * self.accelerator.num_processes
        return pixels.to(self.accelerator.device, non_blocking=True).float() / EIGHT_BIT_MAX, indices


def random_augment(
    images: Sequence[torch.Tensor], zoom_range: tuple[float, float], generator: torch.Generator
) -> list[torch.Tensor]:
    """
    The authors' augmentation, batched on the device. `images`: tensors (B, 3, S, S) (square, same
    B); the same random transform is applied to row b of every tensor (so a backlit image and its
    enhanced results stay aligned). Per sample: horizontal flip (p 0.5), vertical flip (p 0.5),
    transpose (p 0.5), zoom by (zx, zy) ~ U(zoom_range) (p 0.3) and rotation by U(-90, 90) degrees
    (p 0.3), with reflected borders. Random numbers come from `generator` (CPU).
    """
    batch = images[0].shape[0]
    device = images[0].device
    draws = torch.rand(batch, 9, generator=generator)
    hflip = (draws[:, 0] < HFLIP_P).to(device)
    vflip = (draws[:, 1] < VFLIP_P).to(device)
    transpose = (draws[:, 2] < TRANSPOSE_P).to(device)
    rotate = draws[:, 3] < ROTATE_P
    zoom = draws[:, 4] < ZOOM_P
    angle = (draws[:, 5] * 2 - 1) * math.radians(MAX_ROTATION_DEG)
    low, high = zoom_range
    zx = torch.where(zoom, low + (high - low) * draws[:, 6], torch.ones(batch))
    zy = torch.where(zoom, low + (high - low) * draws[:, 7], torch.ones(batch))
    angle = torch.where(rotate, angle, torch.zeros(batch))
    cos, sin = torch.cos(angle), torch.sin(angle)
    # output pixel (x, y) samples input at R(angle) @ diag(1/zx, 1/zy) @ (x, y): zx > 1 magnifies
    theta = torch.stack(
        [torch.stack([cos / zx, -sin / zy, torch.zeros(batch)], dim=1),
         torch.stack([sin / zx, cos / zy, torch.zeros(batch)], dim=1)],
        dim=1,
    )
    needs_warp = (rotate | zoom).to(device)
    out = []
    for tensor in images:
        x = torch.where(hflip.view(-1, 1, 1, 1), tensor.flip(-1), tensor)
        x = torch.where(vflip.view(-1, 1, 1, 1), x.flip(-2), x)
        x = torch.where(transpose.view(-1, 1, 1, 1), x.transpose(-1, -2), x)
        if bool(needs_warp.any()):
            grid = F.affine_grid(theta.to(device=device, dtype=x.dtype), list(x.shape), align_corners=False)
            warped = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
            x = torch.where(needs_warp.view(-1, 1, 1, 1), warped, x)
        out.append(x)
    return out


__all__ = [
    "STREAM_NAMES",
    "BatchStreams",
    "CenterCroppedImages",
    "ENHANCE_ZOOM_RANGE",
    "PROMPT_ZOOM_RANGE",
    "FolderImages",
    "HFDatasetImages",
    "ResizedImages",
    "dataset_sources",
    "folder_source",
    "list_image_files",
    "random_augment",
    "stream_indices",
]
