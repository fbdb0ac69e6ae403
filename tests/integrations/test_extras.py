"""Each integration, without its optional library, fails on one line that names its extra; `import cliplit`
loads none of them; the packaging fields the integrations need (extras, the Comfy Registry's table)."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

# (integration module, the modules hidden as if not installed, its extra)
MISSING = [
    ("cliplit.integrations.ray", ("ray", "ray.data"), "ray"),
    ("cliplit.integrations.spandrel", ("spandrel", "spandrel.util"), "spandrel"),
    ("cliplit.integrations.comfyui", ("safetensors",), "comfyui"),
]


def run_without(hidden: tuple[str, ...], code: str) -> subprocess.CompletedProcess:
    prelude = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in hidden)
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, cwd=REPO_ROOT,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})


@pytest.mark.slow
@pytest.mark.parametrize("module, hidden, extra", MISSING, ids=[m[2] for m in MISSING])
def test_a_missing_extra_is_one_line_naming_it(module, hidden, extra):
    code = (f"from cliplit.integrations import MissingExtraError\ntry:\n    import {module}\n"
            "except MissingExtraError as error:\n    print(error)\nelse:\n    print('imported')\n")
    result = run_without(hidden, code)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and f'pip install "cliplit[{extra}]"' in lines[0] and module in lines[0]


@pytest.mark.parametrize("module, hidden, extra", MISSING, ids=[m[2] for m in MISSING])
def test_a_missing_extra_is_one_line_naming_it_in_process(module, hidden, extra, monkeypatch):
    """The same refusal in this process: the integration imported anew while its library is hidden (both restored after)."""
    from cliplit.integrations import MissingExtraError

    for name in hidden:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(MissingExtraError) as refused:
        importlib.import_module(module)
    message = str(refused.value)
    assert "\n" not in message and f'pip install "cliplit[{extra}]"' in message and module in message


@pytest.mark.slow
def test_comfyui_reports_the_missing_extra_when_it_loads_the_repository():
    code = ("import importlib.util\n"
            f"spec = importlib.util.spec_from_file_location('custom_node', {str(REPO_ROOT / '__init__.py')!r})\n"
            "module = importlib.util.module_from_spec(spec)\n"
            "try:\n    spec.loader.exec_module(module)\nexcept ImportError as error:\n    print(error)\n")
    result = run_without(("safetensors",), code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == [
        'cliplit.integrations.comfyui needs safetensors, which is not installed: pip install "cliplit[comfyui]"']


def test_import_cliplit_from_inside_custom_nodes_gives_the_package(tmp_path):
    """Python run in ComfyUI/custom_nodes finds the repository (custom_nodes/cliplit) as `cliplit`: its
    top-level __init__.py hands over to the package inside it, and loads no node."""
    clone = tmp_path / "custom_nodes" / "cliplit"
    clone.mkdir(parents=True)
    (clone / "cliplit").symlink_to(REPO_ROOT / "cliplit")
    shutil.copyfile(REPO_ROOT / "__init__.py", clone / "__init__.py")
    code = ("import sys, cliplit\nprint(cliplit.__file__)\nprint(cliplit.Enhancer.__module__)\n"
            "print(sorted(m for m in sys.modules if m.startswith('cliplit.integrations')))")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=clone.parent, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(clone / "cliplit" / "__init__.py"), "cliplit.engine.enhancer", "[]"]


@pytest.mark.slow
def test_import_cliplit_loads_no_integration_nor_its_library():
    code = "import sys, cliplit\nprint(sorted(m for m in sys.modules if m.startswith(('cliplit.integrations', 'ray', 'spandrel'))))"
    result = run_without((), code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# The Comfy Registry's rules for a node id (docs.comfy.org, registry specifications): < 100 characters,
# letters, digits, "-", "_", "." only, no two special characters in a row, a letter first, no "ComfyUI".
REGISTRY_NODE_ID = re.compile(r"^[A-Za-z](?:[A-Za-z0-9]|[-_.](?=[A-Za-z0-9]))*$")
COMFY_FIELDS = ("PublisherId", "DisplayName", "Icon")


def test_pyproject_has_the_extras_and_the_comfy_registry_fields():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    extras = project["optional-dependencies"]
    assert {"ray", "spandrel", "comfyui"} <= set(extras)
    test_extra = " ".join(extras["test"])
    assert all(requirement.split(">")[0] in test_extra for requirement in extras["ray"] + extras["spandrel"])
    assert REGISTRY_NODE_ID.match(project["name"]) and len(project["name"]) < 100
    assert "comfyui" not in project["name"].lower() and re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    assert set(COMFY_FIELDS) <= set(pyproject["tool"]["comfy"])
    assert (REPO_ROOT / "__init__.py").is_file()
