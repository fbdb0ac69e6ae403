"""Each integration, without its optional library, fails on one line that names its extra; `import cliplit`
loads none of them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

# (integration module, the modules hidden as if not installed, its extra)
MISSING = [
    ("cliplit.integrations.ray", ("ray", "ray.data"), "ray"),
    ("cliplit.integrations.spandrel", ("spandrel", "spandrel.util"), "spandrel"),
    ("cliplit.integrations.comfyui", ("cv2",), "comfyui"),
]


def run_without(hidden: tuple[str, ...], code: str) -> subprocess.CompletedProcess:
    prelude = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in hidden)
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, cwd=REPO_ROOT,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})


@pytest.mark.parametrize("module, hidden, extra", MISSING, ids=[m[2] for m in MISSING])
def test_a_missing_extra_is_one_line_naming_it(module, hidden, extra):
    code = (f"from cliplit.integrations import MissingExtraError\ntry:\n    import {module}\n"
            "except MissingExtraError as error:\n    print(error)\nelse:\n    print('imported')\n")
    result = run_without(hidden, code)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and f'pip install "cliplit[{extra}]"' in lines[0] and module in lines[0]


def test_comfyui_reports_the_missing_extra_when_it_loads_the_repository():
    code = ("import importlib.util\n"
            f"spec = importlib.util.spec_from_file_location('custom_node', {str(REPO_ROOT / '__init__.py')!r})\n"
            "module = importlib.util.module_from_spec(spec)\n"
            "try:\n    spec.loader.exec_module(module)\nexcept ImportError as error:\n    print(error)\n")
    result = run_without(("cv2",), code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == [
        'cliplit.integrations.comfyui needs cv2, which is not installed: pip install "cliplit[comfyui]"']


def test_import_cliplit_loads_no_integration_nor_its_library():
    code = "import sys, cliplit\nprint(sorted(m for m in sys.modules if m.startswith(('cliplit.integrations', 'ray', 'spandrel'))))"
    result = run_without((), code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
