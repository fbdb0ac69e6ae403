"""ComfyUI's entry point into cliplit: ComfyUI imports this file when the repository is cloned into
`ComfyUI/custom_nodes` (or installed there from the Comfy Registry) and registers the nodes it exports
(`cliplit.integrations.comfyui`). Nothing else imports it."""

import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.find_spec("cliplit")
if _spec is None or os.path.dirname(os.path.abspath(_spec.origin or "")) == _HERE:
    sys.path.insert(0, _HERE)  # cliplit is not installed in ComfyUI's Python: use this checkout's package

from cliplit.integrations.comfyui import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
