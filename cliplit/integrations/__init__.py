"""cliplit inside other tools, each behind its own extra and imported only when used (never by `import cliplit`):

- `cliplit.integrations.ray`: `BatchEnhancer` for Ray Data's `map_batches` and `EnhancedImageDatasink`,
  for folders or object storage of any size on a cluster (extra `[ray]`);
- `cliplit.integrations.spandrel`: `install()` adds the CLIP-LIT architecture to spandrel's registry, so
  hosts that load models through spandrel (chaiNNer, ...) detect the authors' checkpoints and ours
  (extra `[spandrel]`);
- `cliplit.integrations.comfyui`: ComfyUI nodes (`NODE_CLASS_MAPPINGS`), found by ComfyUI through the
  repository's top-level `__init__.py` when it is cloned into `ComfyUI/custom_nodes`.

A missing extra is reported on one line that names it (`MissingExtraError`).
"""

from __future__ import annotations

import importlib

from ..errors import CLIPLITError


class MissingExtraError(CLIPLITError, ImportError):
    """An integration's optional library is not installed; the message names the extra that installs it."""


def require_extra(module: str, extra: str, integration: str):
    """Import `module` for `integration`, or raise `MissingExtraError` naming `pip install "cliplit[extra]"`."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(
            f"{integration} needs {module}, which is not installed: pip install \"cliplit[{extra}]\""
        ) from None


__all__ = ["MissingExtraError", "require_extra"]
