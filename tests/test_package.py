"""The package's shape: layers that import only downwards (so no import cycle), a cheap `import cliplit`,
an instant `--help`, and registration with transformers whichever is imported first."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

import cliplit

PACKAGE = REPO_ROOT / "cliplit"
# Each layer may import its own and the lower ones only (the package's __init__ is the entry point).
LAYER_RANKS = {"errors": 0, "safety": 0, "imaging": 1, "model": 2, "engine": 3, "training": 3, "evaluation": 3,
               "video": 4, "interfaces": 5, "integrations": 6, "__main__": 6}
SIBLINGS = ("engine", "training", "evaluation")  # side by side: none imports another
HEAVY = ("torch", "transformers")
HELP_NEEDS_NONE_OF = HEAVY + ("numpy", "PIL")  # --help and `cliplit models` need no array or image library either
UPPER_LAYERS = ("cliplit.engine", "cliplit.training", "cliplit.evaluation.", "cliplit.interfaces.cli",
                "cliplit.interfaces.batch", "cliplit.interfaces.pipeline", "cliplit.integrations")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(name: str) -> str:
    return name.split(".")[1] if name.count(".") >= 1 else ""


def cliplit_imports(path: Path) -> set[str]:
    """Every cliplit module `path` imports, at module level or inside functions."""
    tree = ast.parse(path.read_text())
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.startswith("cliplit"):
                found.add(base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("cliplit"))
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_every_module_imports_only_its_own_and_lower_layers(path):
    name = module_name(path)
    if name == "cliplit":
        return  # the entry point: lazy names for every layer
    rank = LAYER_RANKS[layer_of(name)]
    for imported in cliplit_imports(path):
        if imported == "cliplit":
            assert layer_of(name) == "interfaces", f"{name} imports the package root"  # only for __version__
            continue
        assert LAYER_RANKS[layer_of(imported)] <= rank, f"{name} imports {imported} from a higher layer"
        if layer_of(name) in SIBLINGS:
            assert layer_of(imported) not in set(SIBLINGS) - {layer_of(name)}, f"{name} -> {imported}"


MODEL_MODULES = sorted(module_name(p) for p in (PACKAGE / "model").glob("*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_MODULES)
def test_model_modules_load_no_engine_cli_or_training_module(name):
    code = (f"import sys, importlib; importlib.import_module({name!r}); "
            "print(' '.join(m for m in sys.modules if m.startswith('cliplit')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.split()
    assert name in loaded
    assert not [m for m in loaded if m.startswith(UPPER_LAYERS)]


@pytest.mark.slow
def test_import_cliplit_loads_neither_torch_nor_transformers_nor_the_engine():
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "import cliplit"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")]
    assert "cliplit" in imported
    assert not [m for m in imported if m.split(".")[0] in HEAVY or m.startswith(UPPER_LAYERS)]


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["--help"], ["enhance", "--help"], ["convert", "--help"], ["models", "--help"], ["models"],
                                  ["--version"]])
def test_help_and_version_import_neither_torch_nor_transformers(argv):
    code = ("import sys\nfrom cliplit.interfaces.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            f"print('HEAVY', [m for m in sys.modules if m.split('.')[0] in {HELP_NEEDS_NONE_OF!r}])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "HEAVY []"
    if argv == ["--version"]:
        assert f"cliplit {cliplit.__version__}" in result.stdout


def test_python_dash_m_cliplit_runs_the_command(monkeypatch, capsys):
    """`cliplit/__main__.py` run as `python -m` runs it (in this process; as a process: tests/entry_points)."""
    import runpy

    monkeypatch.setattr(sys, "argv", ["cliplit", "--version"])
    with pytest.raises(SystemExit) as exit_status:
        runpy.run_module("cliplit", run_name="__main__")
    assert exit_status.value.code == 0 and capsys.readouterr().out.startswith(f"cliplit {cliplit.__version__}")


@pytest.fixture(scope="module")
def random_model_dir(tmp_path_factory) -> Path:
    from cliplit import CLIPLITConfig, CLIPLITImageProcessor, CLIPLITModel

    folder = tmp_path_factory.mktemp("random-model")
    CLIPLITModel(CLIPLITConfig()).save_pretrained(folder)
    CLIPLITImageProcessor().save_pretrained(folder)
    return folder


ORDERS = {
    "cliplit first, pipeline": "import cliplit\nfrom transformers import pipeline\nprint(type(pipeline('backlit-enhancement', model=FOLDER)).__name__)",
    "pipeline first": "from transformers import pipeline\nimport cliplit\nprint(type(pipeline('backlit-enhancement', model=FOLDER)).__name__)",
    "transformers.pipelines loaded first": "import transformers.pipelines\nimport cliplit\nfrom transformers import pipeline\nprint(type(pipeline('backlit-enhancement', model=FOLDER)).__name__)",
    "cliplit first, auto model": "import cliplit\nfrom transformers import AutoModelForImageToImage\nprint(type(AutoModelForImageToImage.from_pretrained(FOLDER)).__name__)",
    "auto model first": "from transformers import AutoModelForImageToImage, AutoConfig\nimport cliplit\nprint(type(AutoModelForImageToImage.from_pretrained(FOLDER)).__name__)",
    "modeling_utils first": "import transformers.modeling_utils\nimport cliplit\nfrom transformers import AutoImageProcessor, AutoModel\nAutoImageProcessor.from_pretrained(FOLDER)\nprint(type(AutoModel.from_pretrained(FOLDER)).__name__)",
}


@pytest.mark.slow
@pytest.mark.parametrize("order", ORDERS)
def test_registration_works_whichever_is_imported_first(order, random_model_dir):
    code = f"FOLDER = {str(random_model_dir)!r}\n" + ORDERS[order]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] in ("BacklitEnhancementPipeline", "CLIPLITModel")


# The engine's one-way flow (docs/development.md): the passes drive the runtime and the pyramid math; the
# runtime runs the network's parts and imports no driver (the passes, tiles, memory budgets, fast mode, the
# enhancer), so nothing hands data to the runtime and takes it back through another module.
RUNTIME_MAY_IMPORT = {"cliplit.errors", "cliplit.model.network", "cliplit.engine.fused_cpu", "cliplit.engine.pyramid",
                      "cliplit.engine.settings"}
ENGINE_DRIVERS = {"cliplit.engine.passes", "cliplit.engine.tiles", "cliplit.engine.tiling", "cliplit.engine.memory",
                  "cliplit.engine.fast", "cliplit.engine.enhancer"}


def test_the_runtime_imports_no_driver():
    imported = cliplit_imports(PACKAGE / "engine" / "runtime.py")
    assert not imported & ENGINE_DRIVERS, sorted(imported & ENGINE_DRIVERS)
    assert imported <= RUNTIME_MAY_IMPORT, sorted(imported - RUNTIME_MAY_IMPORT)
    assert cliplit_imports(PACKAGE / "engine" / "fused_cpu.py") <= RUNTIME_MAY_IMPORT


def defined_functions(path: Path) -> set[str]:
    return {node.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.FunctionDef)}


def test_the_pooling_and_interpolation_matrices_are_written_once_and_the_onnx_export_uses_them():
    pyramid = PACKAGE / "engine" / "pyramid.py"
    for function in ("pooling_matrix", "averaging_matrix", "interpolation_matrix", "pooled_sums", "upsample_context", "project"):
        homes = [module_name(path) for path in MODULES if function in defined_functions(path)]
        assert homes == [module_name(pyramid)], (function, homes)
    # no other module builds adaptive-pooling cells or calls adaptive pooling on features (the network's own
    # eager definition in model/network.py aside)
    cell_bound = re.compile(r"\*\s*size\)\s*//\s*bins")
    assert [module_name(path) for path in MODULES if cell_bound.search(path.read_text())] == [module_name(pyramid)]
    pooling_calls = [module_name(path) for path in MODULES for node in ast.walk(ast.parse(path.read_text()))
                     if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "adaptive_avg_pool2d"]
    assert pooling_calls == ["cliplit.model.network"]
    assert "cliplit.engine.pyramid" in cliplit_imports(PACKAGE / "engine" / "onnx_export.py")
