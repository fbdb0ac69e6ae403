"""Test helpers shared by every test folder: the `cliplit` command run in this process (`run_cli`) or as a
new process (`run_cli_process`), random images, a tiny random CLIP (model + tokenizer), synthetic backlit /
well-lit scenes, and the app served as a process.

Nothing here downloads: the CLIP is built from a small ``CLIPConfig`` with random weights, and the
tokenizer from a hand-written byte-level BPE vocabulary, both written with ``save_pretrained``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

TINY_HIDDEN = 32
TINY_PROJECTION = 16
TINY_LAYERS = 5
TINY_HEADS = 2
TINY_PATCH = 32
TINY_IMAGE = 224
TINY_CONTEXT = 77
SEED = 0


def random_pixels(height: int = 37, width: int = 53, seed: int = 0) -> torch.Tensor:
    """Uniform noise: a (1, 3, H, W) float32 image in [0, 1]."""
    return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(seed))


def textured_pixels(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A smooth-plus-noise (1, 3, H, W) image in [0, 1], so that both flat and textured areas occur."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(height // 8, 2), max(width // 8, 2), generator=generator)
    smooth = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    return (0.7 * smooth + 0.3 * torch.rand(1, 3, height, width, generator=generator)).clamp(0, 1)


def tiny_vocab() -> dict[str, int]:
    """Byte-level BPE vocabulary with the special tokens, lowercase letters and their end-of-word forms."""
    tokens = ["<|startoftext|>", "<|endoftext|>"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens += letters + [f"{c}</w>" for c in letters]
    return {tok: i for i, tok in enumerate(tokens)}


def write_tiny_clip(folder: Path, seed: int = SEED) -> Path:
    """Write a tiny random ``CLIPModel`` plus ``CLIPTokenizer`` to ``folder`` and return it."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = tiny_vocab()
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    tokenizer.save_pretrained(folder)
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": TINY_HIDDEN,
            "intermediate_size": 2 * TINY_HIDDEN,
            "num_hidden_layers": TINY_LAYERS,
            "num_attention_heads": TINY_HEADS,
            "max_position_embeddings": TINY_CONTEXT,
            "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": vocab["<|endoftext|>"],
            "pad_token_id": vocab["<|endoftext|>"],
        },
        vision_config={
            "hidden_size": TINY_HIDDEN,
            "intermediate_size": 2 * TINY_HIDDEN,
            "num_hidden_layers": TINY_LAYERS,
            "num_attention_heads": TINY_HEADS,
            "image_size": TINY_IMAGE,
            "patch_size": TINY_PATCH,
        },
        projection_dim=TINY_PROJECTION,
    )
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(folder)
    return folder


SUBJECT_DARKENING = 0.25  # backlit subject = well-lit subject x this
BACKGROUND_LIFT = 0.35  # backlit background = well-lit background pushed this far towards white


def synthetic_scene(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    One synthetic scene: (well-lit image, backlit image, subject mask), images float (size, size, 3)
    in [0, 1], mask bool (size, size). The well-lit image is a smooth coloured background with a
    textured subject (an ellipse); the backlit image darkens the subject and brightens the background.
    """
    yy, xx = np.mgrid[0:size, 0:size] / size
    background = np.stack([0.55 + 0.2 * rng.random() * np.sin(3 * xx + rng.random() * 6) for _ in range(3)], -1)
    background = np.clip(background + 0.1 * yy[..., None], 0, 1)
    cx, cy, rx, ry = rng.uniform(0.35, 0.65), rng.uniform(0.4, 0.7), rng.uniform(0.18, 0.3), rng.uniform(0.2, 0.32)
    mask = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
    colour = rng.uniform(0.35, 0.75, size=3)
    texture = 0.1 * np.sin(20 * xx + rng.random() * 6)[..., None]
    subject = np.clip(colour + texture, 0, 1)
    welllit = np.where(mask[..., None], subject, background)
    backlit_background = background + BACKGROUND_LIFT * (1 - background)
    backlit = np.where(mask[..., None], SUBJECT_DARKENING * subject, backlit_background)
    return welllit, backlit, mask


def to_pil(array: np.ndarray) -> Image.Image:
    """float (H, W, 3) in [0, 1] -> RGB PIL image."""
    return Image.fromarray((np.clip(array, 0, 1) * 255).round().astype(np.uint8))


def write_synthetic_dataset(root: Path, count: int, size: int, seed: int = SEED, unreadable: bool = True) -> tuple[Path, Path]:
    """
    Write `count` backlit and `count` well-lit synthetic images (PNG and JPEG, unpaired scenes)
    under root/backlit and root/welllit; with `unreadable`, also one corrupt file in each folder.
    """
    rng = np.random.default_rng(seed)
    backlit_dir, welllit_dir = Path(root) / "backlit", Path(root) / "welllit"
    backlit_dir.mkdir(parents=True, exist_ok=True)
    welllit_dir.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        suffix = ".png" if i % 2 == 0 else ".jpg"
        _, backlit, _ = synthetic_scene(rng, size)
        welllit, _, _ = synthetic_scene(rng, size)
        to_pil(backlit).save(backlit_dir / f"b{i:03d}{suffix}")
        to_pil(welllit).save(welllit_dir / f"w{i:03d}{suffix}")
    if unreadable:
        (backlit_dir / "corrupt.png").write_bytes(b"not an image")
        (welllit_dir / "corrupt.jpg").write_bytes(b"\xff\xd8 truncated")
    return backlit_dir, welllit_dir


TINY_RESNET_CONFIG = {
    "embed_dim": TINY_PROJECTION,
    "vision_cfg": {"image_size": TINY_IMAGE, "layers": [1, 1, 1, 1], "width": 8},
    "text_cfg": {"context_length": TINY_CONTEXT, "vocab_size": 64, "width": 16, "heads": 2, "layers": 1},
}


def write_tiny_resnet_clip(folder: Path, seed: int = SEED) -> Path:
    """Write a tiny random open_clip CLIP with a ModifiedResNet image tower (the layout of the Hub
    repository `timm/resnet101_clip.openai`: open_clip_config.json + open_clip_model.safetensors)."""
    import open_clip
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = open_clip.CLIP(**TINY_RESNET_CONFIG)
    for module in model.visual.modules():  # non-trivial batch-norm statistics, as in a trained network
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_RESNET_CONFIG, "preprocess_cfg": {}}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return folder


def fill_published_cache(cache: Path, source_folders: list[Path]) -> Path:
    """
    Fill a cliplit cache with every published model whose authors' file is in one of `source_folders`,
    the documented offline way (`cliplit models add NAME FILE`: the published sha256 checked, the file
    kept in `downloads/`, converted with its provenance record), as after a download. Returns `cache`.
    """
    from cliplit.model.cache import add_published_model
    from cliplit.model.catalog import PUBLISHED_MODELS

    for model in PUBLISHED_MODELS.values():
        source = next((folder / model.filename for folder in source_folders if (folder / model.filename).is_file()), None)
        if source is not None:
            add_published_model(model.name, source, Path(cache))
    return Path(cache)


def write_hub_cache_entry(hub_cache: Path, repo_id: str, files_from: Path, revision: str = "0" * 40) -> Path:
    """
    Lay out `files_from`'s files in a Hugging Face hub cache (`$HF_HUB_CACHE`) as a download of `repo_id`
    leaves them (`models--org--name/refs/main` and `snapshots/<revision>/`), so that the library resolves
    `repo_id` offline as after its download. Returns the snapshot folder.
    """
    repo_folder = Path(hub_cache) / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo_folder / "snapshots" / revision
    shutil.copytree(files_from, snapshot, dirs_exist_ok=True)
    (repo_folder / "refs").mkdir(parents=True, exist_ok=True)
    (repo_folder / "refs" / "main").write_text(revision)
    return snapshot


LOCALHOST = "127.0.0.1"
APP_START_TIMEOUT_S = 240  # gradio and torch import, model load, on a busy 2-core machine
APP_STOP_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


@dataclass
class ServedApp:
    """A running `python app.py` process: its URL, the process, and (after it stopped) its exit code and output."""

    url: str
    process: subprocess.Popen
    output: str = ""
    returncode: int | None = None


def command_line(line: str) -> tuple[list[str], dict]:
    """A documented shell line `[VAR=value ...] python app.py ARGS  # comment` -> (argv, its variables),
    run without a shell so that signals reach the app itself; `python` is this interpreter."""
    words = shlex.split(line, comments=True)
    variables = {}
    while words and "=" in words[0] and not words[0].startswith("-"):
        name, value = words.pop(0).split("=", 1)
        variables[name] = value
    if words and words[0] in ("python", "python3"):
        words[0] = sys.executable
    return words, variables


@contextlib.contextmanager
def served_app(command: list[str], *, cwd: Path, env: dict, port: int):
    """
    Start the app as a user does (`command`, e.g. [sys.executable, "app.py", "--model", M]), wait until
    its page answers on `port`, yield a `ServedApp`; then stop it with SIGTERM (as a Space or a
    terminal does) and wait for it, recording its exit code and output.
    """
    url = f"http://{LOCALHOST}:{port}/"
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    served = ServedApp(url, process)
    try:
        deadline = time.monotonic() + APP_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the app exited with {process.returncode} before serving:\n{process.communicate()[0]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the app did not serve {url} within {APP_START_TIMEOUT_S} s")
            time.sleep(0.5)
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            served.output = process.communicate(timeout=APP_STOP_TIMEOUT_S)[0]
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # it and anything it started
            served.output = process.communicate()[0] + "\n(killed: it did not stop within the timeout)"
        served.returncode = process.returncode


def python_env(**extra: str | None) -> dict:
    """The environment for a child process: this one, with the repository importable and `extra` set
    (a value None leaves the variable out)."""
    repo = str(Path(__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH", "")) if p)
    environment = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **extra}
    return {name: value for name, value in environment.items() if value is not None}


PYTHON = sys.executable
PROCESS_TIMEOUT_S = 600  # a command that has not ended by then hangs (these runs take seconds to a few minutes)


@contextlib.contextmanager
def _environment(env: Mapping[str, str | None], cwd: Path | str | None):
    """`env` set (None: removed) and `cwd` the working folder inside the block; afterwards the environment
    (with whatever the command set), the working folder and PyTorch's thread count are as before."""
    saved_environment, saved_cwd = dict(os.environ), os.getcwd()
    torch_threads = torch.get_num_threads()  # the CLI sets it for its process (engine/runtime.py's configure_cpu)
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = str(value)
    try:
        if cwd is not None:
            os.chdir(cwd)
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_environment)
        torch.set_num_threads(torch_threads)


def run_cli(*argv, env: Mapping[str, str | None] = (), cwd: Path | str | None = None) -> subprocess.CompletedProcess:
    """
    `cliplit ARGV` in this process: `cliplit.interfaces.cli.main(argv)` with `sys.stdout` and `sys.stderr`
    captured, `env` set (None: removed) and `cwd` the working folder for the call only. Returns what the
    process would: its exit status (a `SystemExit`, as argparse's usage errors and `--help` raise, included),
    stdout and stderr. What a C library writes to file descriptor 2 itself is not in `stderr` (use pytest's
    `capfd` alongside); an exception that escapes the command's error boundary fails the test.
    """
    from cliplit.interfaces.cli import main

    result = run_main(main, *argv, env=env, cwd=cwd)
    return subprocess.CompletedProcess(["cliplit", *result.args], result.returncode, result.stdout, result.stderr)


def load_script(path: Path | str, name: str):
    """A script of the repository (`bench/*.py`, `train/train.py`) as a module, registered in `sys.modules` as
    `name` (the dataclasses of a script need that), executed once."""
    import importlib.util

    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = sys.modules[name] = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except BaseException:  # a script that fails to load leaves no half-made module behind
            sys.modules.pop(name)
            raise
    return sys.modules[name]


def run_main(main, *argv, env: Mapping[str, str | None] = (), cwd: Path | str | None = None) -> subprocess.CompletedProcess:
    """A script's `main(argv)` in this process, as `run_cli` runs the command's: stdout and stderr captured,
    `env` and `cwd` set for the call only; its exit status (a `SystemExit` included), stdout and stderr."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with _environment(dict(env), cwd), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main([str(arg) for arg in argv])
        except SystemExit as exit_status:  # argparse's usage errors and --help: what the process would exit with
            code = exit_status.code
            if isinstance(code, str):
                print(code, file=sys.stderr)
                code = 1
    return subprocess.CompletedProcess([str(arg) for arg in argv], 0 if code is None else code, stdout.getvalue(),
                                       stderr.getvalue())


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    """The `error: ` lines a command printed on stderr (asserting that it printed no traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def one_error(result: subprocess.CompletedProcess) -> str:
    """The one `error: ` line of a command that failed (asserting a non-zero status and exactly one such line)."""
    lines = error_lines(result)
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    return lines[0]


def random_photo(path: Path, size: tuple[int, int] = (40, 30), seed: int = 0) -> Path:
    """An RGB photo of uniform 8-bit noise, `size` = (width, height), written to `path` (its folder created)."""
    rng = np.random.default_rng(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def installed_cliplit() -> str:
    """The `cliplit` command that `pip install` put on PATH (a failure under CI=true, where it must be installed)."""
    from conftest import in_ci

    executable = shutil.which("cliplit")
    if executable is None:
        if in_ci():
            pytest.fail("the cliplit command is not on PATH: the package must be installed (pip install -e .)")
        pytest.skip("the cliplit command is not on PATH (pip install -e .)")
    return executable


def run_cli_process(*argv, installed: bool = False, env: Mapping[str, str | None] = (),
                    **options) -> subprocess.CompletedProcess:
    """
    `python -m cliplit ARGV` as a new process, the way a user runs it (with `installed`, the `cliplit` command
    that pip put on PATH): this repository importable (`python_env`), `env` added (None: removed), stdout
    and stderr captured as text unless `options` redirect them; `options` go to `subprocess.run` (`cwd`,
    `timeout` (default `PROCESS_TIMEOUT_S`), `preexec_fn`, `stdout`, ...).
    """
    command = [installed_cliplit()] if installed else [PYTHON, "-m", "cliplit"]
    return _run_process([*command, *map(str, argv)], env, options)


def _run_process(command: list[str], env: Mapping[str, str | None], options: dict) -> subprocess.CompletedProcess:
    if not {"stdout", "stderr"} & set(options):
        options["capture_output"] = True
    options.setdefault("timeout", PROCESS_TIMEOUT_S)
    return subprocess.run(command, text=True, env=python_env(**dict(env)), **options)


def run_script_process(script: Path | str, *argv, env: Mapping[str, str | None] = (), **options) -> subprocess.CompletedProcess:
    """`python SCRIPT ARGV` (a bench or example script) as a new process, as `run_cli_process` runs the command."""
    return _run_process([PYTHON, str(script), *map(str, argv)], env, options)


def process_shares(stderr: str) -> dict[int, int]:
    """
    {process index: files enhanced} from the `process k/n: N enhanced, M failed` lines of an `accelerate launch`
    of `cliplit enhance`. Found anywhere in a line: the workers and the launcher share one pipe, and a
    library's unended line may precede ours.
    """
    return {int(index): int(count) for index, count in re.findall(r"process (\d+)/\d+: (\d+) enhanced", stderr)}
