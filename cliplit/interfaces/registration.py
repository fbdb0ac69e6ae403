"""Registration of CLIP-LIT with transformers' Auto classes and pipeline registry, deferred.

`import cliplit` must stay cheap, so it does not import transformers. Instead `install()` (called by
`import cliplit`) registers with whatever part of transformers is already loaded, and places a
finder on `sys.meta_path` that registers with the other parts right after transformers loads them:

| transformers module loaded            | registered there                                             |
|---------------------------------------|--------------------------------------------------------------|
| `models.auto.configuration_auto`      | `AutoConfig` knows `model_type: cliplit`                     |
| `models.auto.modeling_auto`           | `AutoModel`, `AutoModelForImageToImage` -> `CLIPLITModel`    |
| `models.auto.image_processing_auto`   | `AutoImageProcessor` -> `CLIPLITImageProcessor`              |
| `pipelines`                           | the `backlit-enhancement` task (default model: `clip-lit`)   |

So `import cliplit` before or after `from transformers import pipeline` (or the Auto classes) works.
`register()` does all of it at once, eagerly. Every step is idempotent.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import threading

TASK_NAME = "backlit-enhancement"
_TRANSFORMERS = "transformers."


def _register_config() -> None:
    from transformers.models.auto.configuration_auto import AutoConfig

    from ..model.configuration_cliplit import CLIPLITConfig

    AutoConfig.register(CLIPLITConfig.model_type, CLIPLITConfig, exist_ok=True)


def _register_models() -> None:
    from transformers.models.auto.modeling_auto import AutoModel, AutoModelForImageToImage

    from ..model.configuration_cliplit import CLIPLITConfig
    from ..model.modeling_cliplit import CLIPLITModel

    AutoModel.register(CLIPLITConfig, CLIPLITModel, exist_ok=True)
    AutoModelForImageToImage.register(CLIPLITConfig, CLIPLITModel, exist_ok=True)


def _register_image_processor() -> None:
    from transformers.models.auto.image_processing_auto import AutoImageProcessor

    from ..model.configuration_cliplit import CLIPLITConfig
    from ..model.image_processing_cliplit import CLIPLITImageProcessor

    AutoImageProcessor.register(CLIPLITConfig, image_processor_classes={"pil": CLIPLITImageProcessor}, exist_ok=True)


def _register_pipeline() -> None:
    from transformers.models.auto.modeling_auto import AutoModelForImageToImage
    from transformers.pipelines import PIPELINE_REGISTRY

    from .pipeline import BacklitEnhancementPipeline, DefaultModel

    if PIPELINE_REGISTRY.supported_tasks.get(TASK_NAME, {}).get("impl") is BacklitEnhancementPipeline:
        return
    PIPELINE_REGISTRY.register_pipeline(
        TASK_NAME,
        pipeline_class=BacklitEnhancementPipeline,
        pt_model=AutoModelForImageToImage,
        default=DefaultModel(),
        type="image",
    )


# transformers module -> what to register once it is loaded, in this order
STEPS = {
    "transformers.models.auto.configuration_auto": _register_config,
    "transformers.models.auto.modeling_auto": _register_models,
    "transformers.models.auto.image_processing_auto": _register_image_processor,
    "transformers.pipelines": _register_pipeline,
}


def _loaded(name: str) -> bool:
    module = sys.modules.get(name)
    spec = getattr(module, "__spec__", None)
    return module is not None and not getattr(spec, "_initializing", False)


def register() -> None:
    """Register everything now (imports transformers' Auto classes and pipelines)."""
    for step in STEPS.values():
        step()


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loader of the modules in `STEPS` to register after they run."""

    def __init__(self):
        self._resolving = threading.local()

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in STEPS or getattr(self._resolving, "name", None) == fullname:
            return None
        self._resolving.name = fullname
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._resolving.name = None
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader, step = spec.loader, STEPS[fullname]

        class _Loader(importlib.abc.Loader):
            def create_module(self, spec):
                return loader.create_module(spec)

            def exec_module(self, module):
                loader.exec_module(module)
                step()

        spec.loader = _Loader()
        return spec


_FINDER = _RegisterAfterImport()


def install() -> None:
    """Register with the parts of transformers already loaded and defer the rest (see the module docstring)."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    for name, step in STEPS.items():
        if _loaded(name):
            step()


__all__ = ["TASK_NAME", "install", "register"]
