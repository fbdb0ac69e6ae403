"""cliplit: CLIP-LIT backlit image enhancement (Liang et al., ICCV 2023) in transformers conventions.

The package is layered; each layer imports only the ones above it in this list:

- `cliplit.errors`: the one error hierarchy (one-line messages);
- `cliplit.model`: the network (`network.py`, plain PyTorch) and its transformers face (configuration,
  modeling, image processor), conversion of the authors' checkpoints, the catalogue of published
  models and loading;
- `cliplit.imaging`: decoding and encoding images in every mode, reading and writing files;
- `cliplit.engine`: the inference engine (`Enhancer`: runtime, fused CPU pass, exact tiles, fast mode);
- `cliplit.training`: CLIP guidance, prompts, losses and training data (for `train/train.py`);
- `cliplit.interfaces`: the command line, batch processing, the `backlit-enhancement` pipeline and the
  registration with transformers.

`import cliplit` is cheap: the names below load on first use, and the registration with transformers'
Auto classes and pipelines happens when transformers loads them (`cliplit.interfaces.registration`).
"""

from __future__ import annotations

import importlib

from .interfaces.registration import install as _install_registration

__version__ = "0.2.0"

_EXPORTS = {
    "CLIPLITConfig": "cliplit.model.configuration_cliplit",
    "CLIPLITModel": "cliplit.model.modeling_cliplit",
    "CLIPLITOutput": "cliplit.model.modeling_cliplit",
    "CLIPLITPreTrainedModel": "cliplit.model.modeling_cliplit",
    "CLIPLITImageProcessor": "cliplit.model.image_processing_cliplit",
    "CLIPLITNetwork": "cliplit.model.network",
    "ArchitectureConfig": "cliplit.model.architecture",
    "PUBLISHED_MODELS": "cliplit.model.catalog",
    "load_model": "cliplit.model.loading",
    "load_network": "cliplit.model.loading",
    "Enhancer": "cliplit.engine.enhancer",
    "EnhancerCache": "cliplit.engine.enhancer",
    "EngineSettings": "cliplit.engine.settings",
    "enhance": "cliplit.engine.enhancer",
    "read_image": "cliplit.imaging.files",
    "write_image": "cliplit.imaging.files",
    "register": "cliplit.interfaces.registration",
    "CLIPLITError": "cliplit.errors",
    "CheckpointError": "cliplit.errors",
    "ImageReadError": "cliplit.errors",
    "ModelNotFoundError": "cliplit.errors",
    "SettingsError": "cliplit.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cliplit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


_install_registration()
