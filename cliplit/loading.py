"""Resolving what a user names as a model: a Hub repo id, a `from_pretrained` folder, an authors'
`.pth` file, or nothing (the default model, downloaded once and cached)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from .errors import CLIPLITError, ModelNotFoundError, first_line

MODEL_ENV_VAR = "CLIPLIT_MODEL"
CACHE_ENV_VAR = "CLIPLIT_CACHE"
DEFAULT_CHECKPOINT_URL = "https://github.com/ZhexinLiang/CLIP-LIT/raw/main/pretrained_models/enhancement_model.pth"
DEFAULT_CHECKPOINT_SHA256 = "67aa1bdbac345842670e494b02953f299e5088bcb3f98a18bd60b06fef48b5c9"
DEFAULT_MODEL_DIRNAME = "clip-lit-enhancement"
AUTHOR_CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
HASH_CHUNK_BYTES = 1 << 20


def cache_dir() -> Path:
    """Where the default model is kept: $CLIPLIT_CACHE, else $XDG_CACHE_HOME/cliplit, else ~/.cache/cliplit."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cliplit"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def default_model_dir() -> Path:
    """
    The folder of the default model (the authors' published checkpoint, converted), downloading and
    converting it on first use. The download is checked against its published sha256.
    """
    from .convert import convert_checkpoint

    folder = cache_dir() / DEFAULT_MODEL_DIRNAME
    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = folder.parent / "enhancement_model.pth"
    if not checkpoint.is_file() or sha256_of(checkpoint) != DEFAULT_CHECKPOINT_SHA256:
        partial = checkpoint.with_suffix(".partial")
        try:
            torch.hub.download_url_to_file(DEFAULT_CHECKPOINT_URL, os.fspath(partial), progress=True)
        except Exception as error:  # noqa: BLE001 - any network failure gets the same advice
            partial.unlink(missing_ok=True)
            raise ModelNotFoundError(
                f"{DEFAULT_CHECKPOINT_URL}: could not download the default model ({type(error).__name__}: {error}); "
                f"offline, pass --model PATH (an authors' .pth file or a from_pretrained folder) or set {MODEL_ENV_VAR}"
            ) from None
        if sha256_of(partial) != DEFAULT_CHECKPOINT_SHA256:
            partial.unlink(missing_ok=True)
            raise ModelNotFoundError(f"{DEFAULT_CHECKPOINT_URL}: downloaded file does not match its published sha256")
        partial.replace(checkpoint)
    convert_checkpoint(checkpoint, folder, overwrite=True)
    return folder


def resolve_model_spec(spec: str | os.PathLike | None) -> str:
    """The model a user asked for: `spec`, else $CLIPLIT_MODEL, else the default model's folder."""
    if spec is None or str(spec) == "":
        spec = os.environ.get(MODEL_ENV_VAR) or None
    if spec is None:
        return os.fspath(default_model_dir())
    return os.fspath(spec)


def load_model(spec: str | os.PathLike | None = None, device: str | torch.device | None = None, **config_overrides):
    """
    Load a `CLIPLITModel` in eval mode from a Hub repo id, a `from_pretrained` folder, an authors' `.pth`
    file (converted on the fly), or the default model when `spec` is None. Raises `CLIPLITError` with a
    one-line message when it cannot.
    """
    from .configuration_cliplit import CLIPLITConfig
    from .convert import model_from_author_checkpoint
    from .modeling_cliplit import CLIPLITModel

    spec = resolve_model_spec(spec)
    path = Path(spec)
    if path.is_file() or path.suffix.lower() in AUTHOR_CHECKPOINT_SUFFIXES:
        model = model_from_author_checkpoint(path, CLIPLITConfig(**config_overrides))
    else:
        if not path.is_dir() and (path.is_absolute() or spec.startswith(".") or spec.count("/") > 1):
            raise ModelNotFoundError(f"{spec}: no such file or folder")
        try:
            model = CLIPLITModel.from_pretrained(spec, **config_overrides)
        except CLIPLITError:
            raise
        except (OSError, ValueError, EnvironmentError) as error:
            raise ModelNotFoundError(f"{spec}: cannot load a CLIP-LIT model ({first_line(error)})") from None
    model.eval()
    return model.to(device) if device is not None else model


def load_image_processor(spec: str | os.PathLike | None = None):
    """The image processor saved with a model, or the default one (CLIP-LIT needs no settings)."""
    from .image_processing_cliplit import CLIPLITImageProcessor

    path = Path(resolve_model_spec(spec)) if spec is not None else None
    if path is not None and (path / "preprocessor_config.json").is_file():
        return CLIPLITImageProcessor.from_pretrained(path)
    return CLIPLITImageProcessor()


def resolve_device(device: str | None = "auto") -> torch.device:
    """'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N'; an unavailable CUDA is an error."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise CLIPLITError(f"--device {device}: CUDA is not available on this machine (use --device cpu or auto)")
    return torch.device(device)
