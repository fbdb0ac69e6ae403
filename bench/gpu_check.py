"""One command that proves and measures every CUDA path of cliplit in one short GPU window (docs/speed.md).

Usage (from the repository root):

    bash bench/gpu_check.sh [--quick]                        # on the GPU machine: the wheels in .whl/, then this
    python bench/gpu_check.py --device cuda --out OUT [--quick]
    python bench/gpu_check.py --device cpu --quick           # the rehearsal (CI): tiny sizes, every section

Sections, in this order; each one's result is written into OUT/gpu_check.json as soon as it ends, so a
run stopped at its time limit still brings back what it measured:

1. machine: device name, driver, torch / CUDA / cuDNN versions, TF32 defaults, the optional packages present;
2. tests: `tests/engine/test_gpu.py -m gpu` through pytest: parity with the authors' outputs in fp32
   (within one level), tiles = whole image, fast mode, half precision, video frame batches, the pipeline
   and `Enhancer` on CUDA (OUT/pytest.xml); the rehearsal runs only the CPU cases of the tiles test (the
   normal suite runs every CPU case already);
3. benchmark: `bench/benchmark.py` on the three reference photos and a 12 MP image (the first photo
   resized), plus its `large` 24 MP image: MP/s and peak memory of exact fp32, fp16, bf16 (with the
   largest level difference and PSNR against fp32), fast mode, the plain eager network; in the full run
   also exact fp32 without TF32, tiles, 24 MP in tiles, `torch.compile`, channels-last on and off
   (the eager network in NCHW and NHWC, fp32 / fp16 / bf16) and the whole `cliplit enhance` on the photos;
4. video: `bench/video_speed.py` on a 1080p clip: fps of the network alone, of the pipeline and of the
   whole `cliplit enhance clip.mp4` (exact mode at frame batches 1, 4, 8 in the full run; fast mode);
5. training: 20 steps of each guidance method (prompts, latent, rave) with tiny random CLIP models, the
   three runs of `train/train.py` in one process on the device (8 steps in the rehearsal);
6. app: `python app.py` on the device and its `/enhance` endpoint through `gradio_client` (when gradio
   is installed; it does not travel to the GPU machine by default, docs/speed.md);
7. profile: `torch.profiler` over exact fp32 on the 12 MP image (full run: also bf16 and fast-mode
   1080p frames): the operators that take the device's time, and how busy the device is (wall time
   against device time: launch overhead and the CPU side show as idle device time).

Then one table, and issue 31's goals (met, missed, or not measured). `--device cpu` is a rehearsal: tiny
sizes by default, so that CI runs every section in minutes; its figures are not CPU benchmarks (those
are bench/benchmark.py's) and no goal is judged on it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ElementTree
from datetime import datetime, timezone
from pathlib import Path

from cliplit.errors import first_line
from cliplit.safety.outputs import write_text_atomically

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH = REPO_ROOT / "bench"
TESTS = REPO_ROOT / "tests"
GPU_TESTS = TESTS / "engine" / "test_gpu.py"
TRAIN_SCRIPT = REPO_ROOT / "train" / "train.py"
APP = REPO_ROOT / "app.py"
RESULT_FILE = "gpu_check.json"
JUNIT_FILE = "pytest.xml"
SECTIONS = ("machine", "tests", "benchmark", "video", "training", "app", "profile")
SHARED_ENV_VAR = "CLIPLIT_SHARED"  # where tests/conftest.py finds the reference data when not at ../shared
TWELVE_MP_STEM = "photo_12mp"  # sorts after the reference photos: bench/benchmark.py's `large` resizes the first photo
GIB = 1 << 30
MEGA = 1e6

# Sizes and training steps: the on a GPU, tiny ones for the CPU rehearsal.
SIZES = {
    "cuda": {"photo_side": 0, "twelve": "3000x4000", "large": "4000x6000", "video_size": "1920x1080", "frames": 48,
             "tile_size": 1024, "train_steps": 20},
    "cpu": {"photo_side": 160, "twelve": "96x128", "large": "120x160", "video_size": "64x48", "frames": 4, "tile_size": 64,
            "train_steps": 8},
}
QUICK_MODES = ["baseline", "exact", "fp16", "bf16", "fast", "large"]
FULL_MODES = QUICK_MODES + ["tiled", "large-tiled", "compiled", "eager-nhwc", "eager-nchw-fp16",
                            "eager-nhwc-fp16", "eager-nchw-bf16", "eager-nhwc-bf16", "cli-batch"]
FULL_FRAME_BATCHES, QUICK_FRAME_BATCHES = [1, 4, 8], [4]
CPU_REHEARSAL_TESTS = "tiles"  # the suite runs every CPU case already: the rehearsal runs a few, for this section's sake
GUIDANCES = ("prompts", "latent", "rave")
# Every stage in the first 6 steps (RAVE: reconstruction, enhancement), then rounds of enhancement and prompt refinement.
TRAIN_SCHEDULE = {"prompt_init_steps": 2, "reconstruction_steps": 1, "enhance_steps_per_round": 2, "prompt_steps_per_round": 1}
TRAIN_RESOLUTION = 32
TRAIN_IMAGES = 8
APP_ROUND_TRIPS = 3
# The run's own limit: on CUDA within 8 and 3 minutes with the wheels' install; the CPU rehearsal is slower.
BUDGET_S = {("cuda", False): 450, ("cuda", True): 165, ("cpu", False): 6000, ("cpu", True): 3000}
MIN_SECTION_S = 10  # a section is not started with less time than this left
RESERVED_SHARE = {"video": 0.10, "training": 0.07, "profile": 0.03}  # of the budget, kept for these by earlier sections
MODE_TIMEOUT_S = {"cuda": 240, "cpu": 900}  # one benchmark mode at most (compile included)
PROFILE_TOP = 12
OPTIONAL_PACKAGES = ("av", "open_clip_torch", "gradio", "gradio_client", "pi_heif", "rawpy", "exifread", "onnxruntime")
VERSIONS = ("torch", "transformers", "accelerate", "numpy", "pillow", "opencv-python-headless", "safetensors")

# Issue 31's goals, for when it runs on an H100: (key, text, target, "min" or "max" the figure may be).
GOALS = (
    ("exact_fp32_12mp", "exact fp32 >= 100 MP/s on a 12 MP photo", 100.0, "min"),
    ("bf16_12mp", "bf16 >= 200 MP/s on a 12 MP photo", 200.0, "min"),
    ("half_levels", "fp16 and bf16 within 2 levels of fp32", 2, "max"),
    ("video_fast_command", "1080p video >= 30 fps in fast mode (whole command)", 30.0, "min"),
    ("large_seconds", "24 MP in under 1 s", 1.0, "max"),
    ("parity_levels", "exact fp32 within 1 level of the authors' outputs", 1, "max"),
)


class Check:
    """The run's state: its options, the time budget, the work folder, and the results written to OUT."""

    def __init__(self, args):
        self.args = args
        self.started = time.monotonic()
        self.out = Path(args.out).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix="cliplit-gpu-check-"))
        self.results = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "device": args.device,
                        "quick": args.quick, "sizes": args.sizes, "sections": {}, "rows": [], "goals": []}

    def remaining(self) -> float:
        return self.args.budget_s - (time.monotonic() - self.started)

    def seconds_for(self, section: str) -> float:
        """The time section `section` may take: what is left, less the shares kept for the sections after it."""
        later = SECTIONS[SECTIONS.index(section) + 1:]
        kept = sum(RESERVED_SHARE.get(name, 0.0) * self.args.budget_s for name in later if name not in self.args.skip)
        return max(MIN_SECTION_S, self.remaining() - kept)

    def add_row(self, section: str, name: str, **figures) -> None:
        """One line of the table: `figures` maps a label to a number or a short text."""
        self.results["rows"].append({"section": section, "name": name, "figures": figures})

    def save(self) -> None:
        """Write OUT/gpu_check.json atomically (a run stopped meanwhile leaves the previous whole file)."""
        write_text_atomically(self.out / RESULT_FILE, json.dumps(self.results, indent=2, default=str))

    def run_section(self, name: str, function) -> None:
        """Run one section unless skipped or out of time; record its status, seconds and any failure."""
        record = {"status": "skipped"}
        if name in self.args.skip:
            record["reason"] = "--skip"
        elif self.remaining() < MIN_SECTION_S:
            record["reason"] = f"the time budget ({self.args.budget_s:g} s) was spent"
        else:
            print(f"== {name} ({self.remaining():.0f} s left)", flush=True)
            start = time.monotonic()
            try:
                reason = function(self)
                record = {"status": "skipped", "reason": reason} if reason else {"status": "ok"}
            except Exception as error:  # noqa: BLE001 - one failing section must not lose the others' figures
                record = {"status": "failed", "reason": f"{type(error).__name__}: {first_line(error)}"}
            record["seconds"] = round(time.monotonic() - start, 1)
        if record["status"] != "ok":
            print(f"   {name}: {record['status']}: {record.get('reason', '')}", flush=True)
        self.results["sections"][name] = record
        self.save()


def bench_module():
    """bench/benchmark.py (its machine description, images and modes are reused here)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module("benchmark")


def tests_helpers():
    """tests/helpers.py (the tiny CLIP, synthetic scenes, the served app, the child processes' environment)."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    return importlib.import_module("helpers")


def python_env(**extra: str) -> dict:
    """The environment of the processes started here: the repository importable (first), what was on
    PYTHONPATH kept (the wheels installed with `pip install --target`), unbuffered output."""
    return tests_helpers().python_env(**extra)


def run_logged(command: list, seconds: float, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command (in its own process group) with its output passed on line by line as it comes;
    after `seconds` the group is killed (its worker processes too) and `TimeoutError` raised."""
    print("   $ " + " ".join(str(part) for part in command), flush=True)
    process = subprocess.Popen([str(part) for part in command], cwd=REPO_ROOT, env=env or python_env(), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    stopped = threading.Event()

    def stop() -> None:
        stopped.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    timer = threading.Timer(max(seconds, 1.0), stop)
    timer.start()
    lines = []
    try:
        for line in process.stdout:
            print(f"   | {line.rstrip()}", flush=True)
            lines.append(line)
        process.wait()
    finally:
        timer.cancel()
    if stopped.is_set():
        raise TimeoutError(f"{Path(str(command[1])).name} stopped after {seconds:.0f} s (the time budget)")
    return subprocess.CompletedProcess(command, process.returncode, "".join(lines), "")


# ----------------------------------------------------------------------------------------------- machine
def section_machine(check: Check) -> None:
    import torch

    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "cpu": bench_module().cpu_model(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "tf32_convolutions": torch.backends.cudnn.allow_tf32, "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "versions": {name: package_version(name) for name in VERSIONS + OPTIONAL_PACKAGES},
            "commit": git_commit()}
    if check.args.device == "cuda":
        properties = torch.cuda.get_device_properties(0)
        info.update(gpu=properties.name, gpu_memory_gib=round(properties.total_memory / GIB, 1),
                    multiprocessors=properties.multi_processor_count, capability=f"{properties.major}.{properties.minor}",
                    driver=nvidia_smi("driver_version"))
    check.results["machine"] = info
    device = info.get("gpu", info["cpu"])
    check.add_row("machine", device, torch=info["torch"], cuda=info["cuda"] or "-", driver=info.get("driver") or "-",
                  tf32_conv=info["tf32_convolutions"])


def nvidia_smi(field: str) -> str | None:
    try:
        result = subprocess.run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"], capture_output=True,
                                text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip().splitlines()[0] if result.returncode == 0 and result.stdout.strip() else None


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def git_commit() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    except OSError:
        return None
    return result.stdout.strip() or None


def importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------------------------------------- tests
def section_tests(check: Check) -> None:
    junit = check.out / JUNIT_FILE
    selection = ["-m", "gpu"] if check.args.device == "cuda" else ["-m", "not gpu", "-k", CPU_REHEARSAL_TESTS]
    result = run_logged([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", GPU_TESTS, *selection,
                         f"--junitxml={junit}"], check.seconds_for("tests"), env=python_env(**{SHARED_ENV_VAR: str(check.args.shared)}))
    counts, failures = junit_summary(junit)
    check.results["tests"] = {"exit_status": result.returncode, **counts, "failures": failures}
    check.add_row("tests", f"tests/engine/test_gpu.py {' '.join(selection)}", **counts)
    for failure in failures:
        check.add_row("tests", f"FAILED {failure['test']}", reason=failure["message"][:160])
    if result.returncode not in (0, 1) or not counts["tests"]:
        raise RuntimeError(f"pytest ended with status {result.returncode} and {counts['tests']} tests")


def junit_summary(path: Path) -> tuple[dict, list]:
    """(counts of passed / failed / skipped tests, [{test, message}] of the failures) from pytest's JUnit XML."""
    counts = {"tests": 0, "passed": 0, "failed": 0, "skipped": 0}
    failures = []
    if not path.is_file():
        return counts, failures
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        counts["tests"] += 1
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        if problem is not None:
            counts["failed"] += 1
            message = (problem.get("message") or problem.text or "").strip().splitlines()
            failures.append({"test": f"{case.get('classname')}::{case.get('name')}", "message": message[0] if message else ""})
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return counts, failures


# --------------------------------------------------------------------------------------------- benchmark
def reference_photos(check: Check) -> list[Path]:
    photos = sorted((check.args.shared / "reference" / "clip-lit" / "images").glob("*.jpg"))
    if not photos:
        raise RuntimeError(f"{check.args.shared}/reference/clip-lit/images: no reference photos")
    return photos


def benchmark_images(check: Check) -> Path:
    """The benchmark's photos in the work folder: the reference photos (resized so that their longer
    side is at most --photo-side, when given) and the first of them resized to --twelve (12 MP)."""
    folder = check.work / "images"
    if folder.is_dir():
        return folder
    from PIL import Image

    benchmark = bench_module()
    folder.mkdir()
    side = check.args.sizes["photo_side"]
    for photo in reference_photos(check):
        if side:
            with Image.open(photo) as image:
                image = image.convert("RGB")
                image.thumbnail((side, side), Image.Resampling.LANCZOS)
                image.save(folder / f"{photo.stem}.png")
        else:
            shutil.copyfile(photo, folder / photo.name)
    ((_, pixels),) = benchmark.large_image(benchmark.load_images(folder), check.args.sizes["twelve"])
    Image.fromarray(pixels).save(folder / f"{TWELVE_MP_STEM}.png", compress_level=1)
    return folder


def section_benchmark(check: Check) -> None:
    sizes = check.args.sizes
    modes = QUICK_MODES if check.args.quick else FULL_MODES
    report = check.work / "benchmark.json"
    images = benchmark_images(check)
    seconds = check.seconds_for("benchmark")
    result = run_logged([sys.executable, BENCH / "benchmark.py", "--model", model_file(check), "--images", images,
                         "--modes", *modes, "--large", sizes["large"], "--device", check.args.device,
                         "--tile-size", sizes["tile_size"], "--golden", check.args.shared / "reference" / "clip-lit" / "golden",
                         "--json", report, "--mode-timeout", round(min(MODE_TIMEOUT_S[check.args.device], seconds)),
                         "--time-limit", round(seconds - 5)],
                        seconds + 30)  # the benchmark stops itself: the margin lets it write its results
    if result.returncode != 0 or not report.is_file():
        raise RuntimeError(f"bench/benchmark.py ended with status {result.returncode}")
    data = json.loads(report.read_text())
    check.results["benchmark"] = data
    for mode, record in data["records"].items():
        check.add_row("benchmark", mode, **benchmark_figures(record))
    for mode, reason in data.get("failures", {}).items():
        check.add_row("benchmark", f"{mode} FAILED", reason=reason[:160])


def benchmark_figures(record: dict) -> dict:
    """A benchmark mode's figures: MP/s on the reference photos and on the 12 MP image (or the large one),
    peak memory, fidelity (against fp32 for half precision, else the eager baseline) and against the
    authors' outputs, compile time."""
    photos = [item for item in record["images"] if item["image"] != TWELVE_MP_STEM]
    twelve = [item for item in record["images"] if item["image"] == TWELVE_MP_STEM]
    figures = {}
    if record["mode"].startswith("large"):
        figures["seconds"] = round(sum(item["seconds"] for item in photos), 4)
        figures["MP/s"] = round(throughput(photos), 3)
    else:
        figures["MP/s photos"] = round(throughput(photos), 3) if photos else None
        if twelve:
            figures["MP/s 12MP"] = round(throughput(twelve), 3)
    figures["peak GiB"] = round(record["peak_bytes"] / GIB, 3)
    if record.get("fidelity"):
        figures["max levels"] = max(item["max_level_diff"] for item in record["fidelity"])
        figures["min PSNR dB"] = round(min(item["psnr_db"] for item in record["fidelity"]), 2)
    if record.get("golden"):
        figures["levels vs authors"] = max(item["max_level_diff"] for item in record["golden"])
    if record.get("compile_seconds"):
        figures["compile s"] = round(record["compile_seconds"], 1)
    return figures


def throughput(items: list) -> float:
    return sum(item["megapixels"] for item in items) / max(sum(item["seconds"] for item in items), 1e-12)


def model_file(check: Check) -> Path:
    return check.args.shared / "reference" / "clip-lit" / "enhancement_model.pth"


# ------------------------------------------------------------------------------------------------- video
def section_video(check: Check) -> str | None:
    if not importable("av"):
        return "PyAV is not installed (bash bench/gpu_wheels.sh puts it in .whl/)"
    sizes = check.args.sizes
    report = check.work / "video.json"
    batches = QUICK_FRAME_BATCHES if check.args.quick else FULL_FRAME_BATCHES
    result = run_logged([sys.executable, BENCH / "video_speed.py", "--model", model_file(check),
                         "--photo", reference_photos(check)[0], "--size", sizes["video_size"], "--frames", sizes["frames"],
                         "--modes", "fast", "exact", "--batch-sizes", *batches, "--device", check.args.device,
                         "--repeat", 1 if check.args.quick else 2, "--json", report], check.seconds_for("video"))
    if result.returncode != 0 or not report.is_file():
        raise RuntimeError(f"bench/video_speed.py ended with status {result.returncode}")
    data = json.loads(report.read_text())
    check.results["video"] = data
    for row in data["rows"]:
        check.add_row("video", f"{row['mode']} {row['size']} batch {row['batch']}", **{
            "network fps": round(row["network_fps"], 2), "pipeline fps": round(row["pipeline_fps"], 2),
            "command fps": round(row["command_fps"], 2) if "command_fps" in row else None})
    return None


# ---------------------------------------------------------------------------------------------- training
def section_training(check: Check) -> None:
    helpers = tests_helpers()
    folder = check.work / "training"
    backlit, welllit = helpers.write_synthetic_dataset(folder / "data", count=TRAIN_IMAGES, size=48, unreadable=False)
    clip = helpers.write_tiny_clip(folder / "tiny_clip")
    identity = str(helpers.write_tiny_resnet_clip(folder / "tiny_resnet")) if importable("open_clip") else "vit"
    common = ["--backlit_dir", str(backlit), "--welllit_dir", str(welllit), "--clip_model", str(clip),
              "--identity_model", identity, "--prompt_length", "4", "--resolution", str(TRAIN_RESOLUTION),
              "--prompt_resolution", str(TRAIN_RESOLUTION), "--train_batch_size", "4", "--prompt_batch_size", "4",
              "--best_check_steps", "2", "--dataloader_num_workers", "0", "--seed", "7", "--report_to", "none",
              "--checkpointing_steps", "1000", "--validation_steps", "1000", "--phase_extension_threshold", "inf",
              "--max_train_steps", str(check.args.sizes["train_steps"])]
    for key, value in TRAIN_SCHEDULE.items():
        common += [f"--{key}", str(value)]
    runs = [{"guidance": guidance, "output": str(folder / guidance), "argv": common + ["--guidance", guidance,
             "--output_dir", str(folder / guidance)]} for guidance in GUIDANCES]
    spec = folder / "runs.json"
    spec.write_text(json.dumps(runs))
    extra = {"TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}  # no progress bars in the log
    if check.args.device == "cpu":
        extra["ACCELERATE_USE_CPU"] = "true"
    result = run_logged([sys.executable, __file__, "--train-worker", spec], check.seconds_for("training"), env=python_env(**extra))
    reports = [json.loads(line.split("|", 1)[1]) for line in result.stdout.splitlines() if line.startswith("TRAINED|")]
    check.results["training"] = {"identity_model": "tiny CLIP ResNet (open_clip)" if identity != "vit" else "vit (open_clip absent)",
                                 "runs": reports}
    for report in reports:
        check.add_row("training", f"{report['guidance']}: {report['steps']} steps on {report['device']}",
                      status=report["status"], seconds=report["seconds"], **{"peak GiB": report["peak_gib"]})
    if result.returncode != 0 or len(reports) != len(GUIDANCES) or any(r["status"] != "ok" for r in reports):
        raise RuntimeError("a training run failed (see the table and the log)")


def train_worker(spec: Path) -> int:
    """Run train/train.py once per guidance method in this one process, as `python train/train.py ARGS`
    does; print one `TRAINED|{json}` line per run (its exit status, seconds, device, peak GPU memory)."""
    import runpy

    import torch

    status = 0
    for run in json.loads(Path(spec).read_text()):
        saved_argv = sys.argv
        sys.argv = [str(TRAIN_SCRIPT), *run["argv"]]
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        code = 0
        try:
            runpy.run_path(str(TRAIN_SCRIPT), run_name="__main__")
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        finally:
            sys.argv = saved_argv
        output = Path(run["output"])
        produced = (output / "model.safetensors").is_file()
        from accelerate import PartialState

        device = str(PartialState().device)
        peak = round(torch.cuda.max_memory_allocated() / GIB, 3) if torch.cuda.is_available() else None
        ok = code == 0 and produced
        status = status or (0 if ok else 1)
        print("TRAINED|" + json.dumps({"guidance": run["guidance"], "status": "ok" if ok else f"failed (exit {code})",
                                       "steps": int(run["argv"][run["argv"].index("--max_train_steps") + 1]),
                                       "seconds": round(time.perf_counter() - start, 2), "device": device,
                                       "peak_gib": peak, "model_written": produced}), flush=True)
    return status


# --------------------------------------------------------------------------------------------------- app
def section_app(check: Check) -> str | None:
    if not (importable("gradio") and importable("gradio_client")):
        return "gradio / gradio_client are not installed (they do not travel with the default wheels: docs/speed.md)"
    from gradio_client import Client, handle_file

    helpers = tests_helpers()
    photo = min(benchmark_images(check).iterdir())  # the first reference photo
    port = helpers.free_port()
    command = [sys.executable, str(APP), "--model", str(model_file(check)), "--device", check.args.device, "--port", str(port)]
    seconds = []
    with helpers.served_app(command, cwd=REPO_ROOT, env=python_env(), port=port) as app:
        client = Client(app.url, verbose=False)
        for _ in range(APP_ROUND_TRIPS + 1):  # the first round trip warms the engine up and is not counted
            start = time.perf_counter()
            result = client.predict(handle_file(str(photo)), 1.0, api_name="/enhance")
            seconds.append(time.perf_counter() - start)
        import numpy as np
        from PIL import Image

        with Image.open(result) as enhanced, Image.open(photo) as source:
            if enhanced.size != source.size:
                raise RuntimeError(f"/enhance returned {enhanced.size}, the upload was {source.size}")
            megapixels = source.width * source.height / MEGA
            pixels = np.asarray(enhanced.convert("RGB")).astype(np.int16)
    golden = check.args.shared / "reference" / "clip-lit" / "golden" / f"{photo.stem}.png"
    levels = None
    with Image.open(golden) as expected:  # the authors' output, where the photo travelled at full size
        if expected.size == (pixels.shape[1], pixels.shape[0]):
            levels = int(np.abs(np.asarray(expected.convert("RGB")).astype(np.int16) - pixels).max())
    timed = seconds[1:]
    check.results["app"] = {"photo": photo.name, "megapixels": megapixels, "seconds": seconds, "levels_vs_authors": levels}
    check.add_row("app", f"/enhance round trip, {photo.name} ({megapixels:.2f} MP)",
                  **{"median s": round(statistics.median(timed), 3), "MP/s": round(megapixels / statistics.median(timed), 3),
                     "first s": round(seconds[0], 3), "levels vs authors": levels})
    return None


# ----------------------------------------------------------------------------------------------- profile
def section_profile(check: Check) -> None:
    cases = ["exact"] if check.args.quick else ["exact", "bf16", "fast-video"]
    report = check.work / "profile.json"
    result = run_logged([sys.executable, __file__, "--profile-worker", report, "--device", check.args.device,
                         "--images", benchmark_images(check), "--model", model_file(check),
                         "--video-size", check.args.sizes["video_size"], "--cases", *cases], check.seconds_for("profile"))
    if result.returncode != 0 or not report.is_file():
        raise RuntimeError(f"the profiler worker ended with status {result.returncode}")
    data = json.loads(report.read_text())
    check.results["profile"] = data
    for case in data:
        check.add_row("profile", case["case"], **{"wall ms": case["wall_ms"], "device busy %": case["device_busy_percent"],
                                                 "top op": case["top"][0]["name"][:40] if case["top"] else "-"})


def profile_worker(args) -> int:
    """Profile one pass of each case with torch.profiler after two warm-up passes; write [{case, wall_ms,
    device_ms, device_busy_percent, top: [{name, calls, self_device_ms, self_cpu_ms}]}] to the report."""
    import numpy as np
    import torch
    from PIL import Image

    from cliplit.engine.enhancer import Enhancer
    from cliplit.imaging.codec import DecodedImage
    from cliplit.model.loading import load_network

    device = torch.device(args.device)
    network = load_network(args.model)
    with Image.open(Path(args.images) / f"{TWELVE_MP_STEM}.png") as image:
        twelve = np.asarray(image.convert("RGB"))
    width, height = (int(v) for v in args.video_size.split("x"))
    frame = DecodedImage(np.ascontiguousarray(twelve[:height, :width]).astype(np.float32) / 255)
    size = f"{twelve.shape[1]}x{twelve.shape[0]}"
    cases = {  # label, engine settings, what one pass enhances
        "exact": (f"exact fp32, {size}", {}, twelve),
        "bf16": (f"bf16, {size}", {"precision": "bf16"}, twelve),
        "fast-video": (f"fast mode, 4 frames {width}x{height}", {"mode": "fast"}, [frame] * 4),
    }
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    report = []
    for key in args.cases:
        label, settings, data = cases[key]
        enhancer = Enhancer(network, device=device, **settings)

        def one_pass(enhancer=enhancer, data=data):
            if isinstance(data, list):
                enhancer.enhance_frames(data)
            else:
                enhancer.enhance(data, output_type="np")
            if device.type == "cuda":
                torch.cuda.synchronize()

        for _ in range(2):
            one_pass()
        with torch.profiler.profile(activities=activities) as profiler:
            start = time.perf_counter()
            one_pass()
            wall = time.perf_counter() - start
        report.append(profile_summary(label, profiler, wall, device))
    Path(args.profile_worker).write_text(json.dumps(report, indent=2))
    return 0


def profile_summary(label: str, profiler, wall: float, device) -> dict:
    """What took the device's time (on CUDA the kernels and copies; on a CPU the operators' own CPU time),
    the device's busy share of the wall time, and the operators that took the most CPU time (the host
    side: launches, conversions, copies)."""
    from torch.autograd import DeviceType

    events = list(profiler.key_averages())
    if device.type == "cuda":  # as torch's own table sums it: kernels and copies, not the operators that launched them
        timed = [(event, event.self_device_time_total) for event in events
                 if event.device_type == DeviceType.CUDA and not event.is_user_annotation]
    else:
        timed = [(event, event.self_cpu_time_total) for event in events]
    timed.sort(key=lambda pair: pair[1], reverse=True)
    busy_ms = sum(us for _, us in timed) / 1e3
    host = sorted((event for event in events if event.device_type == DeviceType.CPU), key=lambda e: e.self_cpu_time_total,
                  reverse=True)
    return {"case": label, "wall_ms": round(wall * 1e3, 2), "device_ms": round(busy_ms, 2),
            "device_busy_percent": round(100 * busy_ms / max(wall * 1e3, 1e-9), 1),
            "top": [{"name": event.key, "calls": event.count, "self_device_ms": round(us / 1e3, 3)} for event, us in timed[:PROFILE_TOP]],
            "top_host": [{"name": event.key, "calls": event.count, "self_cpu_ms": round(event.self_cpu_time_total / 1e3, 3)}
                         for event in host[:PROFILE_TOP]]}


# ------------------------------------------------------------------------------------------ table, goals
def judge_goals(check: Check) -> None:
    """Issue 31's goals from the figures: met / missed on CUDA, not judged on the CPU rehearsal."""
    measured = goal_figures(check.results)
    for key, text, target, kind in GOALS:
        value = measured.get(key)
        if value is None:
            verdict = "not measured"
        elif check.args.device != "cuda":
            verdict = "rehearsal (cpu): not judged"
        else:
            verdict = "met" if (value >= target if kind == "min" else value <= target) else "missed"
        check.results["goals"].append({"goal": text, "target": target, "measured": value, "verdict": verdict})


def goal_figures(results: dict) -> dict:
    """The figure each goal is judged on, where it was measured."""
    figures = {}
    records = results.get("benchmark", {}).get("records", {})

    def twelve_mp(mode):
        items = [item for item in records.get(mode, {}).get("images", []) if item["image"] == TWELVE_MP_STEM]
        return throughput(items) if items else None

    figures["exact_fp32_12mp"], figures["bf16_12mp"] = twelve_mp("exact"), twelve_mp("bf16")
    half = [item["max_level_diff"] for mode in ("fp16", "bf16") for item in records.get(mode, {}).get("fidelity", [])]
    figures["half_levels"] = max(half) if half else None
    if "large" in records:
        figures["large_seconds"] = sum(item["seconds"] for item in records["large"]["images"])
    golden = [item["max_level_diff"] for item in records.get("exact", {}).get("golden", [])]
    figures["parity_levels"] = max(golden) if golden else None
    fast = [row for row in results.get("video", {}).get("rows", []) if row["mode"] == "fast" and "command_fps" in row]
    figures["video_fast_command"] = max(row["command_fps"] for row in fast) if fast else None
    return figures


def print_table(check: Check) -> None:
    rows = check.results["rows"]
    width = max([len(f"{row['section']}  {row['name']}") for row in rows] + [20])
    print("\n" + "=" * 100)
    print(f"cliplit GPU check: {check.results.get('machine', {}).get('gpu') or check.args.device}, "
          f"{'quick' if check.args.quick else 'full'} run, {time.monotonic() - check.started:.0f} s")
    print("-" * 100)
    for row in rows:
        figures = "  ".join(f"{label} {value}" for label, value in row["figures"].items() if value is not None)
        print(f"{(row['section'] + '  ' + row['name']).ljust(width)}  {figures}")
    print("-" * 100)
    for name, record in check.results["sections"].items():
        if record["status"] != "ok":
            print(f"section {name}: {record['status']}: {record.get('reason', '')}")
    for goal in check.results["goals"]:
        measured = "-" if goal["measured"] is None else f"{goal['measured']:.4g}"
        print(f"goal: {goal['goal']}: {goal['verdict']} (measured {measured})")
    print(f"figures: {check.out / RESULT_FILE}")


# ------------------------------------------------------------------------------------------------- main
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cuda (default) or cpu (the rehearsal)")
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu-check-out",
                        help="folder for gpu_check.json and pytest.xml (default: $OUT, else ./gpu-check-out)")
    parser.add_argument("--quick", action="store_true", help="the short run: fewer modes, batch sizes and profiles")
    parser.add_argument("--shared", default=None,
                        help=f"the reference data's folder (default: ${SHARED_ENV_VAR}, else ../shared, else ./shared)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help=f"stop starting sections after this many seconds (default on cuda {BUDGET_S['cuda', False]}, "
                             f"quick {BUDGET_S['cuda', True]})")
    parser.add_argument("--skip", nargs="+", default=[], choices=SECTIONS[1:], help="sections to leave out")
    for name, help_text in (("photo-side", "resize the reference photos to at most this side (0: as they are)"),
                            ("twelve", "HxW of the 12 MP image"), ("large", "HxW of the 24 MP image"),
                            ("video-size", "WxH of the video's frames"), ("frames", "frames of the video clip"),
                            ("tile-size", "tile size of the tiled modes"),
                            ("train-steps", "training steps of each guidance method")):
        parser.add_argument(f"--{name}", default=None, help=f"{help_text} (default: the issue's on cuda, tiny on cpu)")
    parser.add_argument("--train-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--profile-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--images", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--model", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cases", nargs="+", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sizes = dict(SIZES[args.device])
    for key in args.sizes:
        value = getattr(args, key)
        if value is not None:
            args.sizes[key] = int(value) if isinstance(args.sizes[key], int) else value
    args.budget_s = args.budget_s or BUDGET_S[args.device, args.quick]
    return args


def shared_folder(given: str | None) -> Path:
    """The folder holding reference/clip-lit: --shared, $CLIPLIT_SHARED, ../shared or ./shared (carried to the GPU machine)."""
    candidates = [given] if given else [os.environ.get(SHARED_ENV_VAR), REPO_ROOT.parent / "shared", REPO_ROOT / "shared"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "reference" / "clip-lit" / "enhancement_model.pth").is_file():
            return Path(candidate).resolve()
    raise SystemExit(f"error: no reference data (reference/clip-lit/enhancement_model.pth) in {given or ' or '.join(map(str, candidates[1:]))}; "
                     "docs/speed.md says how it travels")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.train_worker:
        return train_worker(Path(args.train_worker))
    if args.profile_worker:
        return profile_worker(args)
    args.shared = shared_folder(args.shared)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SystemExit(f"error: --device cuda: torch {torch.__version__} sees no CUDA device (--device cpu rehearses)")
    check = Check(args)
    print(f"cliplit GPU check: device {args.device}, {'quick' if args.quick else 'full'} run, budget {args.budget_s:g} s, "
          f"results in {check.out}", flush=True)
    functions = {"machine": section_machine, "tests": section_tests, "benchmark": section_benchmark, "video": section_video,
                 "training": section_training, "app": section_app, "profile": section_profile}
    try:
        for name in SECTIONS:
            check.run_section(name, functions[name])
    finally:
        judge_goals(check)
        check.results["seconds"] = round(time.monotonic() - check.started, 1)
        check.save()
        with contextlib.suppress(OSError):
            shutil.rmtree(check.work)
    print_table(check)
    return 0 if all(record["status"] != "failed" for record in check.results["sections"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
