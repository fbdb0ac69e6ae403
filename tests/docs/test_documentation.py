"""Executable documentation: every python block of README.md and docs/*.md, and every shell line that
calls `cliplit`, `python app.py` or `accelerate launch`, runs verbatim (see `snippets.py` for what is
extracted and the skip marker). Each runs in a fresh folder laid out like the repository root with the
files the snippets name (`backlit.jpg`, `shots/`, `data/backlit`, ...), offline, with every published
model in cliplit's cache as after its download and tiny random stand-ins for the training's default
Hub models. The session's summary lists how many snippets ran and which were skipped, with reasons."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    ENHANCEMENT_CHECKPOINT,
    INIT_CHECKPOINT,
    RAVE_REFERENCE,
    REPO_ROOT,
    golden_for,
    smallest_reference_image,
)
from helpers import (
    PYTHON,
    command_line,
    free_port,
    python_env,
    served_app,
    write_hub_cache_entry,
    write_synthetic_dataset,
    write_tiny_clip,
    write_tiny_resnet_clip,
)
from photo_files import write_dng, write_heic
from PIL import Image
from snippets import Snippet, documentation_files, extract, starts_the_app, unlabelled_command_blocks
from video_clips import write_test_clip

pytestmark = pytest.mark.reference

SNIPPET_TIMEOUT_S = 600
APP_DEFAULT_PORT = 7860  # where the documentation's client snippets find the app
REPOSITORY_ENTRIES = ("app.py", "train", "bench", "examples", "docs", "README.md", "pyproject.toml")
SNIPPETS = [snippet for path in documentation_files(REPO_ROOT) for snippet in extract(path)]


def snippet_id(snippet: Snippet) -> str:
    same_block = [other for other in SNIPPETS if other.source == snippet.source and other.line == snippet.line]
    suffix = f"-{same_block.index(snippet) + 1}" if len(same_block) > 1 else ""
    return f"{snippet.source.relative_to(REPO_ROOT)}:{snippet.line}{suffix}"


def make_snippet_inputs(folder: Path) -> Path:
    """The files and folders that the documentation's snippets name, in `folder` (laid out like the
    repository root: its app, scripts and examples are linked in)."""
    folder.mkdir(parents=True)
    for entry in REPOSITORY_ENTRIES:
        (folder / entry).symlink_to(REPO_ROOT / entry)
    examples = sorted((REPO_ROOT / "examples").glob("*.jpg"))
    shutil.copyfile(REPO_ROOT / "examples" / "backlit_cat.jpg", folder / "backlit.jpg")
    shutil.copyfile(examples[0], folder / "a.jpg")
    Image.open(examples[-1]).save(folder / "b.png")
    (folder / "shots").mkdir()
    for example in examples:
        shutil.copyfile(example, folder / "shots" / example.name)
    for checkpoint in (ENHANCEMENT_CHECKPOINT, INIT_CHECKPOINT, *sorted(RAVE_REFERENCE.glob("*.pth"))):
        shutil.copyfile(checkpoint, folder / checkpoint.name)  # a temporary copy, as a user has downloaded one
    (folder / "path" / "to").mkdir(parents=True)
    shutil.copyfile(INIT_CHECKPOINT, folder / "path" / "to" / INIT_CHECKPOINT.name)
    subprocess.run([PYTHON, "-m", "cliplit", "convert", str(ENHANCEMENT_CHECKPOINT), str(folder / "path" / "to" / "folder")],
                   check=True, capture_output=True, env=python_env())
    write_synthetic_dataset(folder / "data", count=4, size=40, unreadable=False)
    write_heic(folder / "photo.heic")  # a phone's HEIC with EXIF, and a camera's RAW (DNG)
    write_dng(folder / "photo.dng")
    write_test_clip(folder / "clip.mp4", photo=folder / "backlit.jpg", width=160, height=120, frames=12)  # with audio
    photo = smallest_reference_image()
    for name, source in (("input", photo), ("GT", golden_for(photo))):  # a one-photo stand-in for BAID
        (folder / "BAID" / name).mkdir(parents=True)
        shutil.copyfile(source, folder / "BAID" / name / source.name)
    return folder


@pytest.fixture(scope="module")
def snippet_world(tmp_path_factory, published_cache) -> dict:
    """The inputs (copied per snippet), the cliplit cache and a Hugging Face cache for the snippets."""
    root = tmp_path_factory.mktemp("snippets")
    inputs = make_snippet_inputs(root / "inputs")
    hub = root / "hf" / "hub"
    write_hub_cache_entry(hub, "openai/clip-vit-base-patch32", write_tiny_clip(root / "tiny-clip"))
    pytest.importorskip("open_clip", reason="open_clip_torch is in the training extra")
    write_hub_cache_entry(hub, "timm/resnet101_clip.openai", write_tiny_resnet_clip(root / "tiny-resnet"))
    return {"inputs": inputs, "cache": published_cache, "hf_home": root / "hf"}


@pytest.fixture
def short_temporary_folder():
    """A TMPDIR with a short path: Ray puts AF_UNIX sockets there, whose paths must stay under 108 bytes."""
    folder = Path(tempfile.mkdtemp(prefix="doc-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def fresh_folder(world: dict, tmp_path: Path, scratch: Path) -> tuple[Path, dict]:
    """A copy of the inputs and of the cache for one snippet, and the environment it runs in (TMPDIR `scratch`)."""
    folder = tmp_path / "work"
    shutil.copytree(world["inputs"], folder, symlinks=True)
    cache = tmp_path / "cache"
    shutil.copytree(world["cache"], cache)
    env = python_env(CLIPLIT_CACHE=str(cache), HF_HOME=str(world["hf_home"]), HF_HUB_OFFLINE="1", TMPDIR=str(scratch),
                     GRADIO_ANALYTICS_ENABLED="False", OMP_NUM_THREADS="2", ACCELERATE_USE_CPU="true")
    env.pop("CLIPLIT_MODEL", None)
    return folder, env


def assert_ran(result: subprocess.CompletedProcess, what: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{what} exited with {result.returncode}:\n{output[-4000:]}"
    assert "Traceback" not in output, f"{what} printed a traceback:\n{output[-4000:]}"


def check_served_app(command: str, folder: Path, env: dict) -> None:
    """A documented `python app.py ...` line: started, asked to enhance backlit.jpg, stopped with SIGTERM."""
    from gradio_client import Client, handle_file

    port = free_port()
    argv, variables = command_line(command)
    with served_app(argv, cwd=folder, env={**env, **variables, "GRADIO_SERVER_PORT": str(port)}, port=port) as app:
        result = Client(app.url, verbose=False).predict(handle_file(str(folder / "backlit.jpg")), api_name="/enhance")
        with Image.open(result) as enhanced, Image.open(folder / "backlit.jpg") as original:
            assert enhanced.size == original.size
            assert np.asarray(enhanced.convert("L")).mean() > np.asarray(original.convert("L")).mean()
    assert app.returncode == 0, app.output
    assert "Traceback" not in app.output, app.output


@pytest.mark.slow
@pytest.mark.parametrize("snippet", SNIPPETS, ids=snippet_id)
def test_documented_snippet_runs(snippet: Snippet, snippet_world, tmp_path, short_temporary_folder):
    if snippet.skip_reason:
        pytest.skip(f"{snippet.name}: {snippet.skip_reason}")
    folder, env = fresh_folder(snippet_world, tmp_path, short_temporary_folder)
    if snippet.language == "python":
        script = folder / "snippet.py"
        script.write_text(snippet.commands[0])
        if snippet.with_app:
            with served_app([PYTHON, "app.py"], cwd=folder, env={**env, "GRADIO_SERVER_PORT": str(APP_DEFAULT_PORT)},
                            port=APP_DEFAULT_PORT):
                result = subprocess.run([sys.executable, str(script)], cwd=folder, env=env, capture_output=True, text=True,
                                        timeout=SNIPPET_TIMEOUT_S)
        else:
            result = subprocess.run([sys.executable, str(script)], cwd=folder, env=env, capture_output=True, text=True,
                                    timeout=SNIPPET_TIMEOUT_S)
        assert_ran(result, snippet.name)
        return
    for command in snippet.commands:
        if starts_the_app(command):
            check_served_app(command, folder, env)
            continue
        result = subprocess.run(["bash", "-c", command], cwd=folder, env=env, capture_output=True, text=True,
                                timeout=SNIPPET_TIMEOUT_S)
        assert_ran(result, f"{snippet.name}: {command}")


def test_the_documentation_has_runnable_snippets():
    """The extraction finds the README's own examples (a broken extraction would silently run nothing)."""
    readme = [snippet for snippet in SNIPPETS if snippet.source.name == "README.md"]
    assert any(snippet.language == "python" for snippet in readme)
    assert any(snippet.language == "shell" and snippet.skip_reason is None for snippet in readme)
    assert sum(snippet.skip_reason is None for snippet in SNIPPETS) > sum(snippet.skip_reason is not None for snippet in SNIPPETS)
    unlabelled = {path.name: lines for path in documentation_files(REPO_ROOT) if (lines := unlabelled_command_blocks(path))}
    assert not unlabelled, f"blocks without a language that hold commands (label them bash or text): {unlabelled}"

