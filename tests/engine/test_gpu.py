"""The paths a GPU takes, on every device this machine has: exact fp32 parity with the authors' outputs,
tiles = whole image, fast mode, half precision, video frame batches, the pipeline and `Enhancer` on the
device. Each test runs on the CPU and on CUDA; the CUDA cases carry the `gpu` mark (skipped with the
reason where torch sees no CUDA device). `bench/gpu_check.py` runs the CUDA cases on the GPU machine
(`-m gpu`) and rehearses on the CPU ones (`-m "not gpu"`); the normal suite runs the CPU ones.

Only the public engine API is used (`Enhancer(model, mode=, precision=, device=, tile_size=)`,
`VideoEnhancer`, the pipeline), so that the tests hold whatever the engine's insides become.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from conftest import REFERENCE_IMAGES, golden_for, reference_images_to_check, smallest_reference_image
from helpers import textured_pixels
from PIL import Image

from cliplit.engine.enhancer import Enhancer
from cliplit.engine.fast import FAST_PSNR_FLOOR_DB
from cliplit.evaluation.metrics import psnr
from cliplit.imaging.codec import DecodedImage

CPU, CUDA = "cpu", "cuda"
# The CPU cases rehearse the CUDA ones where no GPU is; the fast loop checks the same paths on the CPU elsewhere
DEVICES = [pytest.param(CPU, id=CPU, marks=pytest.mark.slow), pytest.param(CUDA, id=CUDA, marks=pytest.mark.gpu)]
ONE_LEVEL = 1
ILLUMINATION_TOLERANCE = 1e-5  # tiles against the whole image: float rounding, far below one level (1/255)
HALF_PSNR_FLOOR_DB = 40.0  # fp16/bf16 against fp32: a sanity floor (the 2-level goal is measured by bench/gpu_check.py)
CPU_HALF_CROP = (96, 128)  # bf16 on a CPU without AMX takes a slow path: a crop of the photo there
MIN_ENCODED_PSNR_DB = 40.0  # two x264 encodes of (nearly) the same frames, at CRF 18


def parity_cases() -> list:
    """(device, photo): every reference photo on CUDA; on the CPU the photos the normal suite checks
    (the smallest; all with CLIPLIT_FULL_TESTS=1)."""
    cuda_photos = REFERENCE_IMAGES or reference_images_to_check()
    return ([pytest.param(CPU, photo, id=f"cpu-{photo.stem}", marks=pytest.mark.slow) for photo in reference_images_to_check()]
            + [pytest.param(CUDA, photo, id=f"cuda-{photo.stem}", marks=pytest.mark.gpu) for photo in cuda_photos])


def rgb(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def level_difference(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


@pytest.fixture(scope="module")
def random_model():
    """A random CLIP-LIT network: for the engine's handling of images, which needs no published weights."""
    from cliplit import CLIPLITNetwork

    torch.manual_seed(0)
    return CLIPLITNetwork().eval()


@pytest.mark.parametrize(("device", "photo"), parity_cases())
def test_exact_fp32_is_within_one_level_of_the_authors_outputs(device, photo, reference_model):
    enhancer = Enhancer(reference_model, device=device)
    assert enhancer.device.type == device
    enhanced = enhancer.enhance(Image.open(photo), output_type="np")
    golden = rgb(golden_for(photo))
    assert enhanced.shape == golden.shape
    difference = level_difference(enhanced, golden)
    assert difference <= ONE_LEVEL, f"{photo.name} on {device}: {difference} levels from the authors' output"


@pytest.mark.parametrize("device", DEVICES)
def test_pipeline_on_the_device_gives_the_authors_outputs(device, converted_model_dir):
    from transformers import pipeline

    photo = smallest_reference_image()
    enhancer = pipeline("backlit-enhancement", model=str(converted_model_dir), device=device)
    assert enhancer.enhancer.device.type == device
    golden = rgb(golden_for(photo))
    outputs = [enhancer(str(photo)), *enhancer([Image.open(photo), Image.open(photo)])]
    assert [level_difference(np.asarray(output), golden) <= ONE_LEVEL for output in outputs] == [True, True, True]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("height", "width", "tile"), [(67, 45, 24), (65, 129, 64), (50, 97, 96)])
def test_tiles_equal_the_whole_image_on_the_device(device, height, width, tile, reference_model):
    pixels = textured_pixels(height, width, seed=height + width)
    whole = Enhancer(reference_model, device=device, tile_size=0).illumination(pixels)
    tiled = Enhancer(reference_model, device=device, tile_size=tile).illumination(pixels)
    assert tiled.device.type == CPU and tiled.dtype == torch.float32  # back where the input was
    assert (tiled - whole).abs().max().item() < ILLUMINATION_TOLERANCE
    on_device = Enhancer(reference_model, device=device, tile_size=tile).illumination(pixels.to(device))
    assert on_device.device.type == device
    assert (on_device.cpu() - tiled).abs().max().item() < ILLUMINATION_TOLERANCE


@pytest.mark.parametrize("device", DEVICES)
def test_fast_mode_on_the_device_stays_above_its_psnr_floor(device, reference_model):
    photo = smallest_reference_image()
    fast = Enhancer(reference_model, mode="fast", device=device).enhance(Image.open(photo), output_type="np")
    assert psnr(fast, rgb(golden_for(photo))) >= FAST_PSNR_FLOOR_DB


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_on_the_device_stays_close_to_fp32(device, precision, reference_model):
    if device == CPU and precision == "fp16":
        pytest.skip("fp16 is a GPU precision (the CPU's half precision is bf16)")
    pixels = rgb(smallest_reference_image())
    if device == CPU:
        pixels = pixels[: CPU_HALF_CROP[0], : CPU_HALF_CROP[1]]
    exact = Enhancer(reference_model, device=device).enhance(pixels, output_type="np")
    half_engine = Enhancer(reference_model, device=device, precision=precision)
    half = half_engine.enhance(pixels, output_type="np")
    assert half.dtype == np.uint8 and half.shape == exact.shape
    assert psnr(half, exact) >= HALF_PSNR_FLOOR_DB
    illumination = half_engine.illumination(torch.tensor(pixels).permute(2, 0, 1)[None].float() / 255)
    assert illumination.dtype == torch.float32 and bool(torch.isfinite(illumination).all())


def frames(count: int, height: int = 30, width: int = 40) -> list[DecodedImage]:
    """`count` different frames of one size, float (H, W, 3) in [0, 1]."""
    return [DecodedImage(textured_pixels(height, width, seed=index)[0].permute(1, 2, 0).numpy()) for index in range(count)]


@pytest.mark.parametrize("device", DEVICES)
def test_frames_in_a_batch_get_their_own_results_on_the_device(device, reference_model):
    enhancer = Enhancer(reference_model, device=device)
    images = frames(5)
    batched = enhancer.enhance_frames(images, strength=0.8)
    assert len(batched) == len(images)
    for image, result in zip(images, batched):
        single = enhancer.enhance_decoded(image, strength=0.8)[0]
        assert np.abs(result.pixels - single.pixels).max() < ILLUMINATION_TOLERANCE


@pytest.mark.parametrize("device", DEVICES)
def test_video_in_batches_on_the_device_equals_frame_by_frame(device, tmp_path, reference_model):
    pytest.importorskip("av", reason="PyAV (the video extra) is not installed")
    from video_clips import read_video_frames, stream_packets, write_test_clip

    from cliplit.video.enhancer import VideoEnhancer
    from cliplit.video.settings import GPU_FRAME_BATCH

    clip = write_test_clip(tmp_path / "clip.mp4", frames=7, vfr=True)  # batches of 3: 3, 3 and a last one of 1
    enhancer = Enhancer(reference_model, device=device)
    assert VideoEnhancer(enhancer).options.batch_size == (GPU_FRAME_BATCH if device == CUDA else 1)
    for batch_size in (1, 3):
        assert VideoEnhancer(enhancer, batch_size=batch_size).enhance_file(clip, tmp_path / f"batch{batch_size}.mp4") == 7
    (single, single_times), (batched, batched_times) = (read_video_frames(tmp_path / f"batch{n}.mp4") for n in (1, 3))
    assert len(batched) == 7 and batched_times == single_times
    assert min(psnr(a, b) for a, b in zip(batched, single)) > MIN_ENCODED_PSNR_DB
    assert stream_packets(tmp_path / "batch3.mp4", "audio") == stream_packets(clip, "audio")


@pytest.mark.parametrize("device", DEVICES)
def test_enhancer_on_the_device_keeps_alpha_depth_and_grayscale(device, random_model):
    enhancer = Enhancer(random_model, device=device)
    rng = np.random.default_rng(1)
    rgba = rng.integers(0, 256, (21, 34, 4), dtype=np.uint8)
    deep = rng.integers(0, 65536, (21, 34, 3), dtype=np.uint16)
    gray = rng.integers(0, 256, (21, 34), dtype=np.uint8)
    out_rgba, out_deep, out_gray = (enhancer.enhance(image, output_type="np") for image in (rgba, deep, gray))
    assert np.array_equal(out_rgba[..., 3], rgba[..., 3]) and out_rgba.shape == rgba.shape
    assert out_deep.dtype == np.uint16 and out_deep.shape == deep.shape
    assert out_gray.shape == gray.shape and out_gray.dtype == np.uint8
    tensor = enhancer.enhance(torch.from_numpy(rgba[..., :3]).permute(2, 0, 1).float() / 255, output_type="pt")
    assert tensor.device.type == CPU and tensor.shape == (3, 21, 34)
    cpu = Enhancer(random_model, device=CPU).enhance(rgba, output_type="np")
    assert level_difference(out_rgba, cpu) <= ONE_LEVEL  # the same network on either device


@pytest.mark.parametrize("device", DEVICES)
def test_concurrent_images_on_the_device_get_the_single_image_results(device, random_model):
    """An app serving several uploads at once shares one engine: each thread gets its own image's result."""
    enhancer = Enhancer(random_model, device=device)
    images = [(textured_pixels(40 + 7 * i, 52, seed=i)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8) for i in range(4)]
    expected = [enhancer.enhance(image, output_type="np") for image in images]
    results: dict[int, np.ndarray] = {}

    def run(index: int) -> None:
        results[index] = enhancer.enhance(images[index], output_type="np")

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(images))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(np.array_equal(results[index], expected[index]) for index in range(len(images)))
