"""From what a user names as a model to a network: a published model's short name (`clip-lit`,
`rave-unpaired`, ...), a `from_pretrained` folder, an authors' `.pth` file, a Hub repo id, or nothing
(the default model).

- Short names (`cliplit.model.catalog`) are downloaded once from the authors' repositories, checked
  against their published sha256, converted to a `from_pretrained` folder and cached in
  `$CLIPLIT_CACHE` (else `$XDG_CACHE_HOME/cliplit`, else `~/.cache/cliplit`).
- A name that looks like a path (absolute, `./`, `~`, a checkpoint suffix, or anything that is neither
  a short name nor an `org/name` Hub id) and names nothing on disk fails at once.
- With `HF_HUB_OFFLINE=1` nothing touches the network: Hub ids resolve from the Hugging Face cache and
  short names from ours, or fail with one line that says what is missing.

`load_network` gives the plain-PyTorch `CLIPLITNetwork` the engine runs (no transformers import);
`load_model` gives the transformers `CLIPLITModel`.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.request
from pathlib import Path

from ..errors import CheckpointError, ModelNotFoundError, display_name, first_line
from ..safety.outputs import atomic_write
from ..safety.reading import NotARegularFileError, require_regular_file
from .architecture import AUTHOR_CHECKPOINT_SUFFIXES, CONFIG_FILE, PROCESSOR_FILE, WEIGHTS_FILE
from .cache import DOWNLOADS_DIRNAME, HASH_CHUNK_BYTES, PROVENANCE_FILE, cache_problem, install_converted, sha256_of
from .catalog import DEFAULT_MODEL_NAME, PUBLISHED_MODELS, PublishedModel

MODEL_ENV_VAR = "CLIPLIT_MODEL"
CACHE_ENV_VAR = "CLIPLIT_CACHE"
OFFLINE_ENV_VAR = "HF_HUB_OFFLINE"
DOWNLOAD_TIMEOUT_S = 60
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
HUB_FILES = [CONFIG_FILE, WEIGHTS_FILE, PROCESSOR_FILE]
TRUE_VALUES = ("1", "true", "yes", "on")


def cache_dir() -> Path:
    """Where published models are kept: $CLIPLIT_CACHE, else $XDG_CACHE_HOME/cliplit, else ~/.cache/cliplit."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cliplit"


def offline() -> bool:
    """True when `HF_HUB_OFFLINE` is set: nothing may touch the network."""
    return os.environ.get(OFFLINE_ENV_VAR, "").strip().lower() in TRUE_VALUES


def is_complete_folder(folder: Path) -> bool:
    """A `from_pretrained` folder: config and weights present."""
    return (folder / CONFIG_FILE).is_file() and (folder / WEIGHTS_FILE).is_file()


# ------------------------------------------------------------------------------------ published models
def published_folder(model: PublishedModel) -> Path:
    """Where the converted folder of a published model is cached (whether or not it is there yet)."""
    return cache_dir() / model.name


def is_cached(model: PublishedModel) -> bool:
    """Whether the cached folder of `model` is there and verifies (`cliplit.model.cache.verify_folder`)."""
    return cache_problem(published_folder(model), model) is None


def how_to_add(model: PublishedModel) -> str:
    """The offline way to put a published model in place (worded for every command)."""
    return (f"put it in place with `cliplit models add {model.name} {model.filename}` (the file from "
            f"{model.url}), or name a local model instead (an authors' .pth file or a from_pretrained folder, "
            f"or set {MODEL_ENV_VAR})")


def download(url: str, destination: Path, sha256: str, model: PublishedModel | None = None) -> None:
    """
    Fetch `url` into `destination`, checked against `sha256`: written to a partial file beside it and
    renamed only when complete and correct, so an interrupted or wrong download leaves nothing behind.
    """
    advice = f"; {how_to_add(model)}" if model is not None else ""
    if offline():
        raise ModelNotFoundError(f"{url}: not downloaded: {OFFLINE_ENV_VAR} is set and the file is not cached{advice}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    try:
        with atomic_write(destination) as partial, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            with open(partial, "wb") as handle:
                for chunk in iter(lambda: response.read(HASH_CHUNK_BYTES), b""):
                    digest.update(chunk)
                    handle.write(chunk)
            if digest.hexdigest() != sha256:
                raise ModelNotFoundError(f"{url}: the downloaded file does not match its published sha256 (refused)")
    except OSError as error:
        raise ModelNotFoundError(f"{url}: could not download ({first_line(error)}){advice}") from None


def published_model_folder(name: str) -> Path:
    """
    The cached `from_pretrained` folder of a published model, downloaded, checked and converted on first
    use. A cached folder that does not verify (truncated, foreign, changed) is rebuilt from the checked
    download, or refused with one line saying how to put it in place.
    """
    model = PUBLISHED_MODELS[name]
    folder = published_folder(model)
    problem = cache_problem(folder, model)
    if problem is None and os.path.lexists(folder / PROVENANCE_FILE):
        return folder
    checkpoint = cache_dir() / DOWNLOADS_DIRNAME / model.filename
    have_download = checkpoint.is_file() and sha256_of(checkpoint) == model.sha256
    if problem is None and not have_download:
        return folder  # verified, from before provenance records (nothing to rebuild it from)
    if not have_download:
        try:
            download(model.url, checkpoint, model.sha256, model)
        except ModelNotFoundError as error:
            if problem != "not cached":
                raise ModelNotFoundError(f"{problem}; the cached {name} cannot be rebuilt: {error}") from None
            raise
    return install_converted(checkpoint, folder, model)


# ------------------------------------------------------------------------------------ any model spec
def looks_like_path(spec: str) -> bool:
    """
    Whether `spec` can only be meant as a file or folder: not an `org/name` Hub id (absolute and
    relative paths, `~`, backslashes and bare words never are), or ending like a file.
    """
    return not HUB_ID.match(spec) or spec.lower().endswith(AUTHOR_CHECKPOINT_SUFFIXES + (".safetensors", ".json"))


def locate_model(spec: str | os.PathLike | None = None) -> Path:
    """
    The local folder (`from_pretrained` layout) or authors' checkpoint file that `spec` names, fetching
    it first when it is a short name or a Hub id. `spec` None: $CLIPLIT_MODEL, else the default model.
    """
    if spec is None or os.fspath(spec) == "":
        spec = os.environ.get(MODEL_ENV_VAR) or DEFAULT_MODEL_NAME
    spec = os.fspath(spec)
    if spec in PUBLISHED_MODELS:
        return published_model_folder(spec)
    path = Path(spec).expanduser()
    if path.exists():
        return path
    if looks_like_path(spec):
        known = ", ".join(PUBLISHED_MODELS)
        raise ModelNotFoundError(f"{display_name(spec)}: no such folder or file (nor a published model name: {known})")
    return _hub_snapshot(spec)


def _hub_snapshot(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_FILES, local_files_only=offline()))
    except Exception as error:  # noqa: BLE001 - huggingface_hub raises many types for a missing repo
        where = f"not in the Hugging Face cache and {OFFLINE_ENV_VAR} is set" if offline() else first_line(error)
        raise ModelNotFoundError(f"{display_name(repo_id)}: no such folder or file, and no Hub model ({where})") from None


def read_model_folder(folder: Path):
    """
    (ArchitectureConfig, state dict) of a `from_pretrained` folder, checked: `model_type`, sane config
    values, a readable safetensors file, the expected keys and shapes, finite weights. Errors are
    `CheckpointError`s naming the file. The tensors are fresh copies (not a memory map).
    """
    from safetensors.torch import load_file

    from .architecture import ArchitectureConfig
    from .conversion import check_weights
    from .network import CLIPLITNetwork

    weights = folder / WEIGHTS_FILE
    for name in (CONFIG_FILE, WEIGHTS_FILE):  # a FIFO or a device would block the read forever
        if os.path.lexists(folder / name):
            try:
                require_regular_file(folder / name)
            except NotARegularFileError as error:
                raise CheckpointError(str(error)) from None
    architecture = ArchitectureConfig.from_folder(folder)
    try:
        state_dict = load_file(weights)
    except FileNotFoundError:
        raise CheckpointError(f"{display_name(weights)}: no such file") from None
    except Exception as error:  # noqa: BLE001 - safetensors raises its own error types for bad files
        raise CheckpointError(f"{display_name(weights)}: not a readable safetensors file ({first_line(error)})") from None
    check_weights(state_dict, CLIPLITNetwork(architecture).state_dict(), display_name(weights))
    return architecture, state_dict


def load_network(spec: str | os.PathLike | None = None, device=None):
    """
    The `CLIPLITNetwork` (plain PyTorch, eval mode) that `spec` names (see `locate_model`), on `device`.
    Loading a folder imports no transformers. Raises `CLIPLITError` with a one-line message when it cannot.
    """
    from .conversion import network_from_author_checkpoint
    from .network import CLIPLITNetwork

    path = locate_model(spec)
    if not path.is_dir():
        network = network_from_author_checkpoint(path)
    else:
        architecture, state_dict = read_model_folder(path)
        network = CLIPLITNetwork(architecture)
        network.load_state_dict(state_dict, strict=True)
        network.eval()
    return network.to(device) if device is not None else network


def load_model(spec: str | os.PathLike | None = None, device=None, **config_overrides):
    """
    The transformers `CLIPLITModel` (eval mode) that `spec` names (see `locate_model`), on `device`;
    `config_overrides` change the configuration (for example `default_strength=0.8`). Folders are checked
    as `read_model_folder` says, and the weights are copied into the model's own (aligned) memory, so it
    computes bit-identically to the model that was saved.
    """
    from .configuration_cliplit import CLIPLITConfig
    from .conversion import model_from_author_checkpoint
    from .modeling_cliplit import CLIPLITModel

    path = locate_model(spec)
    try:
        if not path.is_dir():
            model = model_from_author_checkpoint(path, CLIPLITConfig(**config_overrides))
        else:
            _, state_dict = read_model_folder(path)
            config = CLIPLITConfig.from_pretrained(path, **config_overrides)
            model = CLIPLITModel(config)
            model.load_state_dict(state_dict, strict=True)
    except (TypeError, ValueError) as error:  # a bad configuration override
        raise CheckpointError(f"{display_name(path)}: {first_line(error)}") from None
    model.eval()
    return model.to(device) if device is not None else model


def load_image_processor(spec: str | os.PathLike | None = None):
    """The image processor saved with a model, or the default one (CLIP-LIT needs no settings)."""
    from .image_processing_cliplit import CLIPLITImageProcessor

    path = locate_model(spec) if spec is not None else None
    if path is not None and (path / PROCESSOR_FILE).is_file():
        return CLIPLITImageProcessor.from_pretrained(path)
    return CLIPLITImageProcessor()


__all__ = [
    "CACHE_ENV_VAR",
    "MODEL_ENV_VAR",
    "cache_dir",
    "is_cached",
    "load_image_processor",
    "load_model",
    "load_network",
    "locate_model",
    "published_model_folder",
    "sha256_of",
]
