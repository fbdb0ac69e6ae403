#!/usr/bin/env bash
# Download, here, the wheels the GPU machine lacks into the git-ignored .whl/ (cp312, manylinux x86_64),
# check that their dependencies are there or on the machine, and print what travels against the 64 MiB
# limit (docs/speed.md). bench/gpu_check.sh installs them there with `pip install --no-index --target`.
#
#   bash bench/gpu_wheels.sh          # PyAV (the video rows) + open_clip (the authors' identity loss in training)
#   bash bench/gpu_wheels.sh --app    # gradio instead of PyAV (the app's /enhance round trip): both do not fit
#
# The core path (import cliplit, the engine, the CLI on images, the tests of tests/engine/test_gpu.py)
# needs none of them: pi-heif, rawpy and exifread are imported only when a HEIC or RAW file is read.
set -euo pipefail
cd "$(dirname "$0")/.."

TRAINING=(open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.7.0)
VIDEO=(av==18.1.0)
APP=(gradio==6.31.0 gradio_client==2.7.2 hf-gradio==0.4.1 fastapi==0.165.0 starlette==1.10.0 uvicorn==0.55.0
     pydantic==2.13.4 pydantic_core==2.46.4 annotated-types==0.7.0 typing-inspection==0.4.2 opentelemetry-api==1.39.1
     importlib-metadata==8.7.0 brotli==1.2.1 groovy==0.1.2 orjson==3.11.5 pydub==0.25.1 python-multipart==0.0.34
     pytz==2026.6 safehttpx==0.1.7 semantic-version==2.10.0 tomlkit==0.14.0)
# What these wheels need that the GPU machine's image already has (its package list: .library/device/KINDS.md).
DEVICE_HAS="torch torchvision regex tqdm huggingface-hub safetensors timm anyio httpx jinja2 markupsafe numpy packaging
pandas pillow pyyaml typer typing-extensions fsspec click h11 annotated-doc zipp"
LIMIT_MIB=64

if [ "${1:-}" = "--app" ]; then wanted=("${TRAINING[@]}" "${APP[@]}"); else wanted=("${TRAINING[@]}" "${VIDEO[@]}"); fi
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${wanted[@]}"

DEVICE_HAS="$DEVICE_HAS" LIMIT_MIB=$LIMIT_MIB python3 - <<'PY'
"""Every dependency of the downloaded wheels is downloaded too or on the machine; sizes against the limit."""
import os
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

MIB = 1 << 20
ENVIRONMENT = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
               "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
               "platform_python_implementation": "CPython", "os_name": "posix", "extra": ""}
wheels = sorted(Path(".whl").glob("*.whl"))
present = {canonicalize_name(parse_wheel_filename(w.name)[0]) for w in wheels}
present |= {canonicalize_name(name) for name in os.environ["DEVICE_HAS"].split()}
missing = []
for wheel in wheels:
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        for line in Parser().parsestr(archive.read(metadata).decode()).get_all("Requires-Dist") or []:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate(ENVIRONMENT):
                continue
            if canonicalize_name(requirement.name) not in present:
                missing.append(f"{wheel.name} needs {requirement}")
for wheel in wheels:
    print(f"{wheel.stat().st_size / MIB:8.2f} MiB  {wheel.name}")
wheel_bytes = sum(w.stat().st_size for w in wheels)
files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], capture_output=True, check=True).stdout
tree_bytes = sum(Path(name).stat().st_size for name in files.decode().split("\0") if name and Path(name).is_file())
shared = Path("shared")
shared_bytes = sum(p.stat().st_size for p in shared.rglob("*") if p.is_file()) if shared.is_dir() else 0
total = wheel_bytes + tree_bytes + shared_bytes
limit = int(os.environ["LIMIT_MIB"])
print(f"{wheel_bytes / MIB:8.2f} MiB  wheels ({len(wheels)})")
print(f"{tree_bytes / MIB:8.2f} MiB  working tree (tracked and untracked-not-ignored files)")
print(f"{shared_bytes / MIB:8.2f} MiB  shared/ (the reference data carried: docs/speed.md)")
print(f"{total / MIB:8.2f} MiB  travels, of {limit} MiB")
if missing:
    sys.exit("error: dependencies neither downloaded nor on the GPU machine:\n  " + "\n  ".join(missing))
if total > limit * MIB:
    sys.exit(f"error: {total / MIB:.2f} MiB would travel, over the {limit} MiB limit")
PY
