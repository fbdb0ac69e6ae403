"""The node pack's install (ComfyUI-Manager, `comfy node install` and the Comfy Registry pip-install each line
of requirements.txt into ComfyUI's Python): it names exactly what the nodes import, all of it among
ComfyUI's own requirements and without versions, so it adds and changes nothing; and pyproject.toml's
registry fields agree with the catalogue of published models."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from comfyui_server import comfyui_requirements, snapshot_archive
from conftest import ENHANCEMENT_CHECKPOINT, REPO_ROOT, in_ci
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

OPTIONAL = {"psutil"}  # used when present (memory and core counts), not needed

IMPORTS_OF_THE_NODES = f"""
import importlib.util, json
spec = importlib.util.spec_from_file_location("custom_node", {str(REPO_ROOT / "__init__.py")!r})
pack = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pack)
import torch
loader, enhance = pack.NODE_CLASS_MAPPINGS["CLIPLITModelLoader"], pack.NODE_CLASS_MAPPINGS["CLIPLITEnhance"]
(model,) = loader().load({str(ENHANCEMENT_CHECKPOINT)!r}, device="cpu")
enhance().enhance(model, torch.rand(1, 24, 32, 3), 1.0, "exact")
""" + "print(json.dumps(imported_distributions()))"
DISTRIBUTIONS = """
import json

def imported_distributions():
    import importlib.metadata, sys
    distributions = importlib.metadata.packages_distributions()
    top = {name.split(".")[0] for name in sys.modules} - set(sys.stdlib_module_names)
    return sorted({dist for name in top for dist in distributions.get(name, [])} - {"cliplit"})
"""


def node_pack_requirements() -> list[Requirement]:
    lines = [line.split("#", 1)[0].strip() for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()]
    return [Requirement(line) for line in lines if line]


def distributions_imported_by(code: str) -> set[str]:
    """The installed distributions whose modules `code`, run in a fresh Python, imported."""
    result = subprocess.run([sys.executable, "-c", DISTRIBUTIONS + code], capture_output=True, text=True, cwd=REPO_ROOT,
                            env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"})
    assert result.returncode == 0, result.stderr
    return {canonicalize_name(name) for name in json.loads(result.stdout.splitlines()[-1])}


@pytest.mark.slow  # two fresh interpreters
@pytest.mark.reference
def test_requirements_txt_names_exactly_what_the_nodes_import():
    """Loading the pack as ComfyUI does, a model and enhancing an image import the listed packages (and what
    they import themselves), nothing else."""
    required = {canonicalize_name(requirement.name) for requirement in node_pack_requirements()}
    by_the_nodes = distributions_imported_by(IMPORTS_OF_THE_NODES)
    by_the_requirements = distributions_imported_by(
        "import numpy, PIL.Image, safetensors.torch, torch\nprint(json.dumps(imported_distributions()))")
    assert required <= by_the_nodes
    assert by_the_nodes - by_the_requirements <= OPTIONAL


def test_requirements_txt_holds_only_comfyuis_own_requirements_without_versions():
    archive = snapshot_archive()
    if archive is None:
        reason = "no ComfyUI snapshot in ../shared/comfyui"
        pytest.fail(reason + " (CI=true: required)") if in_ci() else pytest.skip(reason)
    comfyui = {canonicalize_name(Requirement(line).name) for line in comfyui_requirements(archive)} | {"torch"}
    for requirement in node_pack_requirements():
        assert canonicalize_name(requirement.name) in comfyui, requirement
        assert not requirement.specifier and not requirement.marker and not requirement.extras, requirement


def test_the_registry_fields_are_filled_and_list_the_published_models():
    import tomllib

    from cliplit.model.catalog import PUBLISHED_MODELS

    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    comfy, urls = pyproject["tool"]["comfy"], pyproject["project"]["urls"]
    assert comfy["PublisherId"] and comfy["DisplayName"] and urls["Repository"].startswith("https://")
    icon = comfy["Icon"].split("/main/", 1)[1]  # served from the repository's main branch
    assert (REPO_ROOT / icon).is_file()
    assert [(model["location"], model["model_url"]) for model in comfy["Models"]] == [
        (f"/cliplit/{model.filename}", model.url) for model in PUBLISHED_MODELS.values()]
