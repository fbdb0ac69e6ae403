"""Conversion of the authors' published `.pth` checkpoints (CLIP-LIT, RAVE) to our weights.

The authors save `state_dict()` of `model_small.UNet_emb_oneBranch_symmetry`, usually wrapped in
`nn.DataParallel` (keys prefixed with `module.`). Their module names are mapped to ours below.
The file is read with `torch.load(weights_only=True)`: nothing in it is executed.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import warnings
from pathlib import Path

import torch

from ..errors import CheckpointError, display_name
from ..safety.outputs import atomic_write
from ..safety.reading import NotARegularFileError, require_regular_file
from .architecture import ArchitectureConfig
from .network import CLIPLITNetwork

DATA_PARALLEL_PREFIX = "module."
WRAPPER_KEYS = ("state_dict", "model", "params", "net")
MAX_KEYS_IN_MESSAGE = 6
# (authors' name pattern, our name) in the order of the forward pass.
AUTHOR_TO_CLIPLIT_KEYS = (
    (r"^cond1\.", "stem."),
    (r"^ResidualBlock([12])\.", lambda m: f"encoder_blocks.{int(m[1]) - 1}."),
    (r"^PPM1\.features\.(\d+)\.1\.", r"pyramid_pooling.stages.\1.conv."),
    (r"^PPM1\.features\.(\d+)\.2\.", r"pyramid_pooling.stages.\1.activation."),
    (r"^PPM1\.fuse\.0\.", "pyramid_pooling.fuse_conv."),
    (r"^PPM1\.fuse\.1\.", "pyramid_pooling.fuse_activation."),
    (r"^condx\.", "expand."),
    (r"^ResidualBlock([34])\.", lambda m: f"middle_blocks.{int(m[1]) - 3}."),
    (r"^condy\.", "reduce."),
    (r"^ResidualBlock([56])\.", lambda m: f"decoder_blocks.{int(m[1]) - 5}."),
    (r"^cond_add1\.", "illumination_head."),
)


def read_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a `.pth` state dict safely (weights_only=True, on the CPU); errors name the file and the reason."""
    path = Path(path)
    name = display_name(path)
    try:
        require_regular_file(path, "checkpoint file")
    except NotARegularFileError as error:
        raise CheckpointError(str(error)) from None
    try:
        with warnings.catch_warnings():  # torch warns about what it refused; the error below says it once
            warnings.simplefilter("ignore")
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message suggests weights_only=False, i.e. running the file's code: never do that
        raise CheckpointError(
            f"{name}: refused: it holds Python objects other than tensors, which cliplit never loads "
            "(a checkpoint must be a state dict of tensors)"
        ) from None
    except Exception as error:  # noqa: BLE001 - torch.load fails in many ways on files that are not checkpoints
        raise CheckpointError(f"{name}: not a PyTorch checkpoint ({type(error).__name__})") from None
    for key in WRAPPER_KEYS:
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise CheckpointError(f"{name}: not a state dict of tensors (found {type(checkpoint).__name__})")
    return checkpoint


def rename_author_key(key: str) -> str:
    """`module.ResidualBlock3.conv1.weight` -> `middle_blocks.0.conv1.weight`; unknown keys are returned as is."""
    if key.startswith(DATA_PARALLEL_PREFIX):
        key = key[len(DATA_PARALLEL_PREFIX) :]
    for pattern, replacement in AUTHOR_TO_CLIPLIT_KEYS:
        renamed, count = re.subn(pattern, replacement, key, count=1)
        if count:
            return renamed
    return key


def _summarize(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_KEYS_IN_MESSAGE])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > MAX_KEYS_IN_MESSAGE else "")


def check_weights(state_dict: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], source: str) -> None:
    """Refuse a state dict whose keys, shapes or values (NaN, inf) do not make a working network."""
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        parts = [f"missing keys: {_summarize(missing)}" if missing else "",
                 f"unexpected keys: {_summarize(unexpected)}" if unexpected else ""]
        raise CheckpointError(f"{source}: not a CLIP-LIT enhancement checkpoint; " + "; ".join(p for p in parts if p))
    wrong_shapes = [
        f"{key} {tuple(value.shape)} != {tuple(expected[key].shape)}"
        for key, value in state_dict.items()
        if value.shape != expected[key].shape
    ]
    if wrong_shapes:
        raise CheckpointError(f"{source}: tensor shapes do not match the configuration: {_summarize(wrong_shapes)}")
    not_finite = [key for key, value in state_dict.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if not_finite:
        raise CheckpointError(f"{source}: weights hold NaN or infinite values: {_summarize(not_finite)}")


def convert_state_dict(author_state_dict: dict[str, torch.Tensor], config=None, source: str = "checkpoint"):
    """The authors' state dict -> ours (float32), checked key by key, shape by shape and value by value."""
    architecture = _architecture(config)
    converted = {rename_author_key(key): value for key, value in author_state_dict.items()}
    check_weights(converted, CLIPLITNetwork(architecture).state_dict(), source)
    return {key: value.float() for key, value in converted.items()}


def _architecture(config) -> ArchitectureConfig:
    if config is None:
        return ArchitectureConfig()
    return config if isinstance(config, ArchitectureConfig) else config.to_architecture()


def network_from_author_checkpoint(path: str | os.PathLike, config: ArchitectureConfig | None = None) -> CLIPLITNetwork:
    """Build a `CLIPLITNetwork` (eval mode, no transformers) from an authors' `.pth` file."""
    network = CLIPLITNetwork(config or ArchitectureConfig())
    network.load_state_dict(convert_state_dict(read_checkpoint(path), network.config, display_name(path)), strict=True)
    return network.eval()


def model_from_author_checkpoint(path: str | os.PathLike, config=None):
    """Build a transformers `CLIPLITModel` (eval mode) from an authors' `.pth` file (`config`: a `CLIPLITConfig`)."""
    from .configuration_cliplit import CLIPLITConfig
    from .modeling_cliplit import CLIPLITModel

    config = config or CLIPLITConfig()
    model = CLIPLITModel(config)
    model.load_state_dict(convert_state_dict(read_checkpoint(path), config, display_name(path)), strict=True)
    return model.eval()


def convert_checkpoint(path: str | os.PathLike, output_dir: str | os.PathLike, config=None, overwrite: bool = False) -> Path:
    """Convert an authors' `.pth` file into a `from_pretrained` folder (config, safetensors, processor)."""
    from .image_processing_cliplit import CLIPLITImageProcessor

    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise CheckpointError(f"{display_name(output_dir)}: exists and is not a folder")
    model = model_from_author_checkpoint(path, config)
    if output_dir.exists() and any(output_dir.iterdir()) and not overwrite:
        raise CheckpointError(f"{display_name(output_dir)}: folder exists and is not empty (pass --overwrite to replace its model files)")
    created = not output_dir.exists()
    try:  # written beside it, then moved in file by file: never half a model; readable under the umask
        with atomic_write(output_dir, readable=True) as staging:  # (safetensors writes 0600 temporaries)
            model.save_pretrained(staging)
            CLIPLITImageProcessor().save_pretrained(staging)
    except OSError as error:
        if created:
            shutil.rmtree(output_dir, ignore_errors=True)
        raise CheckpointError(f"{display_name(output_dir)}: cannot write the model folder ({error.strerror or error})") from None
    return output_dir
