"""A real ComfyUI server for the tests: the ComfyUI source snapshot in ../shared/comfyui (GPL-3.0; unpacked
into a temporary folder only, never into the repository) with this repository installed into its
`custom_nodes` as a user installs it, started with `python main.py --cpu --listen 127.0.0.1`.

ComfyUI's Python requirements are its `requirements.txt` plus `requests` (which its frontend manager
imports but the file omits), less torch, torchvision and torchaudio: the project's torch serves ComfyUI
too, and torchaudio has no wheel for torch 2.14 (without it ComfyUI starts; only its audio nodes fail to
import). The README's test command installs them, before the tests, with

    python tests/integrations/comfyui_server.py install-requirements

(nothing when the snapshot is absent: the server test is then skipped, or fails under CI=true).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT_DIR = REPO_ROOT.parent / "shared" / "comfyui"
SNAPSHOT_PATTERN = "ComfyUI-*.tar.gz"
REQUIREMENTS_FILE = "requirements.txt"
SHARED_WITH_PROJECT = ("torch", "torchvision", "torchaudio")
ALSO_NEEDED = ("requests",)
PYTHON_ENV_VAR = "CLIPLIT_COMFYUI_PYTHON"  # a Python with ComfyUI's requirements (default: this one)
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
UPLOAD_OPTION = "image_upload"  # a combo with an upload button: the workflow stores one more value for the button
CONTROL_OPTION = "control_after_generate"  # a seed's "fixed / randomize" widget: one more stored value
HISTORY_TIMEOUT_S = 900  # CPU inference of several photos on a shared 2-core machine; not a performance check
POLL_S = 0.5


def snapshot_archive() -> Path | None:
    """The ComfyUI source archive in ../shared/comfyui, or None when it is absent."""
    archives = sorted(SNAPSHOT_DIR.glob(SNAPSHOT_PATTERN)) if SNAPSHOT_DIR.is_dir() else []
    return archives[-1] if archives else None


def _top_folder(archive: tarfile.TarFile) -> str:
    return archive.getmembers()[0].name.split("/", 1)[0]


def comfyui_requirements(archive_path: Path) -> list[str]:
    """ComfyUI's requirements as its snapshot states them, less the torch packages, plus `requests`."""
    with tarfile.open(archive_path) as archive:
        text = archive.extractfile(f"{_top_folder(archive)}/{REQUIREMENTS_FILE}").read().decode()
    from packaging.requirements import Requirement

    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    kept = [line for line in lines if line and Requirement(line).name.lower() not in SHARED_WITH_PROJECT]
    return kept + list(ALSO_NEEDED)


def unpack(archive_path: Path, destination: Path) -> Path:
    """Unpack the snapshot into `destination`; returns the ComfyUI folder."""
    with tarfile.open(archive_path) as archive:
        archive.extractall(destination, filter="data")
        return destination / _top_folder(archive)


def repository_files() -> list[str]:
    """The files a clone of this repository has, with the working tree's changes (tracked and new files,
    ignored ones left out), relative to the repository."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO_ROOT,
                            capture_output=True, check=True).stdout.decode()
    return [name for name in listed.split("\0") if name and (REPO_ROOT / name).is_file()]


def install_pack(custom_nodes: Path, folder_name: str = "cliplit") -> Path:
    """Put this repository into `custom_nodes/<folder_name>` as `git clone` (ComfyUI-Manager, or by hand) does.
    ComfyUI-Manager then pip-installs requirements.txt line by line: the caller checks that this changes nothing."""
    target = custom_nodes / folder_name
    for name in repository_files():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, target / name)
    return target


def comfyui_python() -> str:
    return os.environ.get(PYTHON_ENV_VAR) or sys.executable


def missing_requirements(python: str, requirements: list[str]) -> list[str]:
    """The requirements that `python` does not satisfy (checked with `packaging`, as pip does)."""
    code = ("import json, sys, importlib.metadata as m\nfrom packaging.requirements import Requirement\n"
            "missing = []\nfor line in json.loads(sys.argv[1]):\n    requirement = Requirement(line)\n"
            "    try:\n        version = m.version(requirement.name)\n    except m.PackageNotFoundError:\n"
            "        missing.append(line)\n        continue\n"
            "    if not requirement.specifier.contains(version, prereleases=True):\n        missing.append(line)\n"
            "print(json.dumps(missing))\n")
    result = subprocess.run([python, "-c", code, json.dumps(requirements)], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def server_command(comfyui: Path, base: Path, port: int, extra_model_paths: Path | None = None) -> list[str]:
    command = [comfyui_python(), str(comfyui / "main.py"), "--cpu", "--listen", "127.0.0.1", "--port", str(port),
               "--base-directory", str(base)]
    return command + (["--extra-model-paths-config", str(extra_model_paths)] if extra_model_paths else [])


def server_env() -> dict:
    """The server's environment: the user's, without the test run's PYTHONPATH (the nodes must come from
    custom_nodes, not from this checkout)."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH"} | {"PYTHONUNBUFFERED": "1"}


# ------------------------------------------------------------------------------------ the HTTP API
def get_json(url: str, path: str):
    with urllib.request.urlopen(url.rstrip("/") + path, timeout=120) as response:
        return json.loads(response.read())


def post_prompt(url: str, prompt: dict, workflow: dict | None = None) -> tuple[int, dict]:
    """POST /prompt (with the UI workflow, which SaveImage then stores in each PNG); (HTTP status, answer)."""
    body = {"prompt": prompt, "client_id": "cliplit-tests"}
    if workflow is not None:
        body["extra_data"] = {"extra_pnginfo": {"workflow": workflow}}
    request = urllib.request.Request(url.rstrip("/") + "/prompt", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_for_history(url: str, prompt_id: str, timeout_s: float = HISTORY_TIMEOUT_S) -> dict:
    """GET /history/<id> until the prompt ran; its entry (`status`, `outputs`)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        entry = get_json(url, f"/history/{urllib.parse.quote(prompt_id)}").get(prompt_id)
        if entry:  # ComfyUI records a prompt in its history once it has run (or failed)
            return entry
        time.sleep(POLL_S)
    raise AssertionError(f"prompt {prompt_id} did not finish within {timeout_s} s")


def saved_images(entry: dict, output_dir: Path) -> dict[str, list[Path]]:
    """{node id: the files its SaveImage wrote} of a finished prompt."""
    return {node: [output_dir / image["subfolder"] / image["filename"] for image in output.get("images", [])]
            for node, output in entry["outputs"].items()}


def prompt_from_workflow(workflow: dict, object_info: dict) -> dict:
    """The API prompt that ComfyUI's frontend makes of a workflow in its UI format (nodes, links,
    widgets_values): each node's linked inputs as [source id, slot], its widgets' values by name in the
    order of `object_info`'s `input_order`."""
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        info = object_info[node["type"]]
        inputs = {}
        for slot in node.get("inputs", []):
            if slot.get("link") is not None:
                _, source, source_slot, *_ = links[slot["link"]]
                inputs[slot["name"]] = [str(source), source_slot]
        values = iter(node.get("widgets_values", []))
        for category in ("required", "optional"):
            for name in info["input_order"].get(category, []):
                kind, *options = info["input"][category][name]
                options = options[0] if options else {}
                if not (isinstance(kind, list) or kind in WIDGET_TYPES) or name in inputs:
                    continue
                inputs[name] = next(values)
                if options.get(UPLOAD_OPTION) or options.get(CONTROL_OPTION):
                    next(values)
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


@contextlib.contextmanager
def comfyui_server(tmp_path: Path, port: int, extra_model_paths: Path | None = None):
    """Unpack the snapshot under `tmp_path`, install the pack, start the server; yields (ServedApp, ComfyUI
    folder, base folder). The server is stopped by its process id (SIGTERM) afterwards."""
    from helpers import served_app

    comfyui = unpack(snapshot_archive(), tmp_path / "source")
    base = tmp_path / "base"
    for folder in ("custom_nodes", "input", "output", "user", "models"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    install_pack(base / "custom_nodes")
    command = server_command(comfyui, base, port, extra_model_paths)
    with served_app(command, cwd=comfyui, env=server_env(), port=port) as served:
        yield served, comfyui, base


def install_requirements() -> int:
    """`install-requirements`: pip-install ComfyUI's requirements into this Python (see the module docstring)."""
    archive = snapshot_archive()
    if archive is None:
        print(f"no ComfyUI snapshot in {SNAPSHOT_DIR}: its requirements are not installed (the ComfyUI server test will be skipped)")
        return 0
    return subprocess.call([sys.executable, "-m", "pip", "install", "--quiet", *comfyui_requirements(archive)])


if __name__ == "__main__":
    if sys.argv[1:] != ["install-requirements"]:
        sys.exit(f"usage: python {Path(__file__).relative_to(REPO_ROOT)} install-requirements")
    sys.exit(install_requirements())
