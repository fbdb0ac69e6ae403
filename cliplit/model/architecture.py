"""The architecture of the CLIP-LIT enhancement network as plain data (no torch, no transformers).

`ArchitectureConfig` is the single home of the network's hyper-parameters, their defaults (the
published network) and their validation. `CLIPLITConfig` (transformers) takes its defaults and checks
from here, and the inference engine reads a saved `config.json` into it without importing
transformers.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import CheckpointError, display_name

MODEL_TYPE = "cliplit"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
PROCESSOR_FILE = "preprocessor_config.json"
AUTHOR_CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")  # the authors' torch.save files
SAFETENSORS_SUFFIX = ".safetensors"  # a weights file: a folder's `model.safetensors`, or a lone one
PADDING_MODES = ("reflect", "zeros", "replicate", "circular")
DEFAULT_PYRAMID_BINS = (1, 2, 3, 6)


@dataclass(frozen=True)
class ArchitectureConfig:
    """
    Hyper-parameters of the network (defaults: the published network, 278,790 parameters).

    num_channels: channels of the input image (RGB). hidden_size / expanded_hidden_size: widths of the
    outer and the two middle stages. pyramid_bins / pyramid_reduction_size: output sizes of the
    pyramid's adaptive average pools and channels of each pooled branch. padding_mode: padding of the
    3x3 convolutions of the residual blocks, and of the four outer 3x3 convolutions (stem, widening,
    narrowing, head) unless outer_padding_mode says otherwise (None: the same; the pyramid fuse
    convolution always pads with zeros). The published network pads everything by reflection; the
    authors train their `_noreflect` variant: padding_mode "reflect", outer_padding_mode "zeros"
    (`NOREFLECT`). negative_slope: slope of
    the leaky ReLUs. illumination_channels: channels of the predicted map. illumination_floor: lower
    bound of the map before dividing by it (> 0, so no output is NaN or infinite). default_strength:
    exponent of the map in clamp(I / L**strength, 0, 1), 1 = published result.
    """

    num_channels: int = 3
    hidden_size: int = 32
    expanded_hidden_size: int = 64
    pyramid_bins: tuple[int, ...] = field(default=DEFAULT_PYRAMID_BINS)
    pyramid_reduction_size: int = 8
    padding_mode: str = "reflect"
    outer_padding_mode: str | None = None
    negative_slope: float = 0.2
    illumination_channels: int = 1
    illumination_floor: float = 1e-4
    default_strength: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "pyramid_bins", tuple(self.pyramid_bins))
        validate_architecture(**asdict(self))

    @classmethod
    def from_dict(cls, values: dict) -> "ArchitectureConfig":
        """The architecture fields of a config dict (other keys, such as transformers' own, are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in names})

    @classmethod
    def from_folder(cls, folder: str | os.PathLike) -> "ArchitectureConfig":
        """Read `config.json` of a saved model; a file of another `model_type` or with bad values is refused."""
        path = Path(folder) / CONFIG_FILE
        try:
            values = json.loads(path.read_text())
        except FileNotFoundError:
            raise CheckpointError(f"{display_name(path)}: no such file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CheckpointError(f"{display_name(path)}: not a readable JSON config ({error})") from None
        if not isinstance(values, dict):
            raise CheckpointError(f"{display_name(path)}: not a JSON object")
        if values.get("model_type") != MODEL_TYPE:
            raise CheckpointError(
                f"{display_name(path)}: model_type is {values.get('model_type')!r}, not {MODEL_TYPE!r}: not a CLIP-LIT model"
            )
        try:
            return cls.from_dict(values)
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"{display_name(path)}: {error}") from None


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def validate_architecture(
    num_channels, hidden_size, expanded_hidden_size, pyramid_bins, pyramid_reduction_size, padding_mode,
    outer_padding_mode, negative_slope, illumination_channels, illumination_floor, default_strength,
) -> None:
    """Raise `ValueError` naming the first value a network cannot be built or run with."""
    for name, value in (("num_channels", num_channels), ("hidden_size", hidden_size),
                        ("expanded_hidden_size", expanded_hidden_size),
                        ("pyramid_reduction_size", pyramid_reduction_size),
                        ("illumination_channels", illumination_channels)):
        _positive_int(name, value)
    if not pyramid_bins:
        raise ValueError("pyramid_bins must not be empty")
    for value in pyramid_bins:
        _positive_int("each of pyramid_bins", value)
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {', '.join(PADDING_MODES)}, got {padding_mode!r}")
    if outer_padding_mode is not None and outer_padding_mode not in PADDING_MODES:
        raise ValueError(f"outer_padding_mode must be None or one of {', '.join(PADDING_MODES)}, got {outer_padding_mode!r}")
    if not (isinstance(negative_slope, (int, float)) and math.isfinite(negative_slope)):
        raise ValueError(f"negative_slope must be a finite number, got {negative_slope!r}")
    if not (isinstance(illumination_floor, (int, float)) and math.isfinite(illumination_floor) and illumination_floor > 0):
        raise ValueError(f"illumination_floor must be positive, got {illumination_floor!r}")
    check_strength(default_strength, "default_strength")


def outer_padding(config) -> str:
    """The padding of the four outer 3x3 convolutions: `outer_padding_mode`, else `padding_mode`."""
    return getattr(config, "outer_padding_mode", None) or config.padding_mode


# The two networks of the authors' code (`model_small.py`), as (padding_mode, outer_padding_mode).
PUBLISHED_PADDING = ("reflect", None)  # UNet_emb_oneBranch_symmetry: what they evaluate and publish
NOREFLECT_PADDING = ("reflect", "zeros")  # UNet_emb_oneBranch_symmetry_noreflect: what they train
PADDING_VARIANTS = {"reflect": PUBLISHED_PADDING, "noreflect": NOREFLECT_PADDING, "zeros": ("zeros", None)}


MAX_STRENGTH = 4.0  # beyond, every pixel under the brightest illumination saturates: nothing left to show


def check_strength(strength, name: str = "strength") -> float:
    """`strength` as a float; it must be a finite number in [0, MAX_STRENGTH] (0: unchanged, 1: published result)."""
    try:
        value = float(strength)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, {MAX_STRENGTH:g}], got {strength!r}") from None
    if not (math.isfinite(value) and 0 <= value <= MAX_STRENGTH):
        raise ValueError(f"{name} must be a finite number in [0, {MAX_STRENGTH:g}] (0: unchanged, 1: published "
                         f"result; beyond {MAX_STRENGTH:g} every pixel saturates), got {strength!r}")
    return value


def resolve_strength(config, strength=None) -> float:
    """The one place the strength default is resolved: `strength`, else `config.default_strength`; checked."""
    return check_strength(config.default_strength if strength is None else strength)


__all__ = [
    "AUTHOR_CHECKPOINT_SUFFIXES",
    "ArchitectureConfig",
    "CONFIG_FILE",
    "MODEL_TYPE",
    "PROCESSOR_FILE",
    "WEIGHTS_FILE",
    "NOREFLECT_PADDING",
    "PADDING_VARIANTS",
    "PUBLISHED_PADDING",
    "SAFETENSORS_SUFFIX",
    "check_strength",
    "outer_padding",
    "resolve_strength",
    "validate_architecture",
]
