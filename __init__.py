"""ComfyUI's entry point into cliplit: ComfyUI imports this file when the repository is in
`ComfyUI/custom_nodes` (cloned, or installed by ComfyUI-Manager or `comfy node install`), registers the
nodes it exports (`cliplit.integrations.comfyui`) and the pack's model folder (`models/cliplit`).

The nodes run this checkout's `cliplit/` package (the folder beside this file), loaded as `cliplit`
without putting the repository on `sys.path` (its `app.py` would shadow ComfyUI's `app` package).

Python run from inside `custom_nodes` (`python -c "import cliplit"`) imports this file as the package
`cliplit`; it then hands over to the real package and registers nothing.
"""

import importlib.util
import os
import sys

_PACKAGE = "cliplit"
_PACKAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), _PACKAGE)


def _load_package():
    """`cliplit` from this checkout, as `sys.modules["cliplit"]` (kept if a real one is imported already)."""
    loaded = sys.modules.get(_PACKAGE)
    if loaded is not None and getattr(loaded, "__file__", None) != __file__:
        return loaded
    spec = importlib.util.spec_from_file_location(_PACKAGE, os.path.join(_PACKAGE_DIR, "__init__.py"),
                                                  submodule_search_locations=[_PACKAGE_DIR])
    package = importlib.util.module_from_spec(spec)
    sys.modules[_PACKAGE] = package
    try:
        spec.loader.exec_module(package)
    except BaseException:
        del sys.modules[_PACKAGE]
        raise
    return package


_load_package()
if __name__ != _PACKAGE:  # ComfyUI's import (`import cliplit` from inside custom_nodes stops above: no nodes)
    from cliplit.integrations.comfyui import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, register

    register()
    __all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
