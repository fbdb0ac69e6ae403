"""Where the ComfyUI nodes find their models, the ComfyUI way (a folder under `ComfyUI/models`, known to
ComfyUI's `folder_paths`, so that `extra_model_paths.yaml` can add folders to it):

- `models/cliplit/` (`MODEL_FOLDER`) and every `cliplit:` folder of `extra_model_paths.yaml`: each `.pth`
  and `.safetensors` file and each `from_pretrained` folder (`config.json` + `model.safetensors`) in them,
  at any depth, listed by its path in the folder;
- the published names (`clip-lit`, `rave-unpaired`, ...), always listed: the first use downloads the
  authors' file into the first of those folders, checks it against its published sha256 and converts it,
  as `cliplit models` and `--model NAME` do (`cliplit.model.loading.published_model_folder`); what that
  leaves there (`downloads/` and the folder `<name>/`) is listed under the published name only;
- the CLIP-LIT checkpoints among `models/upscale_models` (`cliplit.model.detection`), as
  `upscale_models/<file>`;
- typed by hand (an API prompt, or a widget turned into an input): an absolute path to a file or
  folder, or a Hugging Face Hub id.

The functions take the folders as arguments (inside ComfyUI: `folder_paths.get_folder_paths(...)`).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path, PurePosixPath

from ..errors import ModelNotFoundError, display_name
from ..model.architecture import AUTHOR_CHECKPOINT_SUFFIXES, CONFIG_FILE, SAFETENSORS_SUFFIX, WEIGHTS_FILE
from ..model.cache import DOWNLOADS_DIRNAME
from ..model.catalog import PUBLISHED_MODELS

MODEL_FOLDER = "cliplit"  # ComfyUI/models/cliplit, and the key of extra_model_paths.yaml
UPSCALE_FOLDER = "upscale_models"  # ComfyUI's folder for spandrel models ("Load Upscale Model")
UPSCALE_PREFIX = f"{UPSCALE_FOLDER}/"
CHECKPOINT_SUFFIXES = AUTHOR_CHECKPOINT_SUFFIXES + (SAFETENSORS_SUFFIX,)
LISTED_SUFFIXES = (".pth", SAFETENSORS_SUFFIX)  # what models/cliplit lists (every CLIP-LIT file is one of these)


def register_model_folder(folder_paths) -> None:
    """Add `models/cliplit` to ComfyUI's `folder_paths`, listing `.pth` and `.safetensors` files: first, as
    ComfyUI's own folders (checkpoints, loras, ...) have their `models/` folder first, then any `cliplit:`
    folders of extra_model_paths.yaml (which ComfyUI reads before it loads custom nodes)."""
    folder_paths.add_model_folder_path(MODEL_FOLDER, os.path.join(folder_paths.models_dir, MODEL_FOLDER), is_default=True)
    paths, _ = folder_paths.folder_names_and_paths[MODEL_FOLDER]
    folder_paths.folder_names_and_paths[MODEL_FOLDER] = (paths, set(LISTED_SUFFIXES))


def _is_model_folder(folder: Path) -> bool:
    return (folder / CONFIG_FILE).is_file() and (folder / WEIGHTS_FILE).is_file()


def _is_hidden(relative: PurePosixPath) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _is_published_cache(relative: PurePosixPath) -> bool:
    """Whether a path in a model folder is what a published name's first use left there."""
    return relative.parts[0] == DOWNLOADS_DIRNAME or relative.parts[0] in PUBLISHED_MODELS


def local_models(folder: Path) -> list[str]:
    """The models in one folder, by path in it: `.pth` / `.safetensors` files and `from_pretrained` folders."""
    found = set()
    for path in _walk(folder):
        relative = PurePosixPath(path.relative_to(folder).as_posix())
        if _is_hidden(relative) or _is_published_cache(relative):
            continue
        if path.name == WEIGHTS_FILE and len(relative.parts) > 1 and _is_model_folder(path.parent):
            found.add(str(relative.parent))
        elif path.suffix.lower() in LISTED_SUFFIXES and not _is_model_folder(path.parent):
            found.add(str(relative))
    return sorted(found)


def _walk(folder: Path):
    from ..safety.reading import walk_files

    return walk_files(folder) if folder.is_dir() else ()


def _version(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns


@functools.lru_cache(maxsize=256)
def _is_cliplit_file(path: str, size: int, modified_ns: int) -> bool:
    """`is_cliplit_checkpoint`, remembered per file version (size, mtime): ComfyUI lists on every page load."""
    from ..model.detection import is_cliplit_checkpoint

    return is_cliplit_checkpoint(path)


def upscale_models(folders: list[Path]) -> list[str]:
    """The CLIP-LIT checkpoints among ComfyUI's upscale models, as `upscale_models/<path in the folder>`."""
    found = set()
    for folder in folders:
        for path in _walk(folder):
            relative = PurePosixPath(path.relative_to(folder).as_posix())
            if _is_hidden(relative) or path.suffix.lower() not in CHECKPOINT_SUFFIXES:
                continue
            if _is_cliplit_file(str(path), *_version(path)):
                found.add(UPSCALE_PREFIX + str(relative))
    return sorted(found)


def model_choices(model_folders: list[Path], upscale_folders: list[Path]) -> list[str]:
    """The loader's dropdown: the published names, then what the model folders hold, then the CLIP-LIT
    upscale models."""
    local = sorted({name for folder in model_folders for name in local_models(Path(folder))} - set(PUBLISHED_MODELS))
    return list(PUBLISHED_MODELS) + local + upscale_models([Path(folder) for folder in upscale_folders])


def _inside(folders: list[Path], name: str) -> Path | None:
    """The checkpoint file or model folder `name` (a path relative to one of `folders`, never climbing out
    of it) where it exists first."""
    relative = os.path.relpath(os.path.join("/", name), "/")  # as ComfyUI's folder_paths.get_full_path: no ".."
    for folder in folders:
        candidate = Path(folder) / relative
        if (candidate.is_file() and candidate.suffix.lower() in CHECKPOINT_SUFFIXES) or _is_model_folder(candidate):
            return candidate
    return None


def find_choice(name: str, model_folders: list[Path], upscale_folders: list[Path]) -> str | Path | None:
    """What `name` (a dropdown entry or a hand-typed model) names, without downloading or loading anything:
    a published name (str), a file or folder (Path), a Hub id (str); None when it names nothing."""
    from ..model.loading import looks_like_path

    if name in PUBLISHED_MODELS:
        return name
    if name.startswith(UPSCALE_PREFIX):
        found = _inside(upscale_folders, name[len(UPSCALE_PREFIX):])
        if found is not None and found.is_file() and _is_cliplit_file(str(found), *_version(found)):
            return found
    found = _inside(model_folders, name)
    if found is not None:
        return found
    if os.path.isabs(name) and os.path.exists(name):
        return Path(name)
    if not looks_like_path(name):
        return name  # an org/name Hub id
    return None


def not_found_message(name: str, model_folders: list[Path]) -> str:
    folders = ", ".join(display_name(folder) for folder in model_folders)
    return (f"{display_name(name)}: no such model in {folders} (put a .pth or .safetensors file or a model folder "
            f"there and refresh the page), nor an absolute path to one, nor a published name")


def resolve_choice(name: str, model_folders: list[Path], upscale_folders: list[Path]):
    """What to hand to `cliplit.model.loading.load_network` for `name`: a published name's cached folder
    (downloaded into the first model folder on first use, checksum-checked), a file or folder, or a Hub
    id. Raises `ModelNotFoundError` (one line) when `name` names nothing."""
    from ..model.loading import published_model_folder

    found = find_choice(name, model_folders, upscale_folders)
    if found is None:
        raise ModelNotFoundError(not_found_message(name, model_folders))
    if name not in PUBLISHED_MODELS:
        return found
    model = PUBLISHED_MODELS[name]
    in_place = [Path(folder) for folder in model_folders
                if (Path(folder) / name).is_dir() or (Path(folder) / DOWNLOADS_DIRNAME / model.filename).is_file()]
    target = (in_place or [Path(model_folders[0])])[0]  # where it was put before, else the first folder
    advice = (f"download {model.url} yourself, put {model.filename} into {display_name(target)} and choose "
              f"{model.filename} in the list")
    return published_model_folder(name, cache=target, advice=advice)


__all__ = ["MODEL_FOLDER", "UPSCALE_FOLDER", "find_choice", "local_models", "model_choices", "not_found_message",
           "register_model_folder", "resolve_choice", "upscale_models"]
