"""Quality of `--denoise`: enhance degraded backlit photos and a compressed clip with `--denoise off`, `auto` and
fixed levels, against the truth.

Usage (from the repository root):

    python bench/quality.py --model ../shared/reference/clip-lit/enhancement_model.pth \
        [--width 512] [--scenes astronaut chelsea coffee synthetic] [--degradations jpeg75 iso1600 ...] \
        [--crops docs/images/denoise_crops.jpg]
    python bench/quality.py --model ... --video [--crf 18 23 28] [--frames 16] [--size 192x256] [--crops FILE]

Scenes: the CC0 / public-domain photos that examples/ is rendered from (scikit-image's data module:
astronaut, chelsea, coffee) and our own synthetic rendering (a shaded room with objects and a striped
fabric, `synthetic_photo`), resized to --width and rendered backlit (`render_backlit`: underexposed, with a bright light
screen-blended from one corner; noise-free, so that the rendering is the truth).
This clean float rendering is the truth; its enhancement (published pixels) is the reference.

Degradations (`degrade`), as cameras, the web and re-saving do them: steps joined by "+", applied left to
right: `clean16` (the truth at 16 bits: what denoising must not spoil), `clean8` (8-bit quantization only),
`isoN` (signal-dependent sensor noise of an ISO-N-like level), `jpegQ` (a JPEG file at quality Q, 4:2:0
chroma, as Pillow saves; its tables stay known), `webpQ` / `avifQ` / `heicQ` (WebP, AVIF with Pillow's
encoder, HEIC with pillow-heif's: 4:2:0, decoded again), `cropN` (N rows and columns cut from the top and
left: a JPEG's grid moves), `png` (the decoded pixels saved as a PNG and read back: the JPEG file's tables
are gone). `iso800+jpeg75+png`: noise, then JPEG, then saved as PNG. The truth of a cropped degradation is
the cropped truth.

For each degraded image the script computes the network's map once and divides by it the input cleaned
with `off`, `auto` and each of FIXED_LEVELS (`--denoise S`, with the same JPEG compression as `auto`
found: the file's tables or those recovered from the pixels), as `Enhancer` does (`denoised_input`), and
prints PSNR against the reference, on the whole image and on the shadows (gain 1 / L > 2 in the
reference's map), averaged over the scenes: off, auto and the best fixed level (the one of the best mean
shadow PSNR), SSIM on the shadows for off and auto, the smallest shadow gain over the scenes, how many
outputs `auto` left identical to `off`, and what `auto` did per scene (its level, "hist qN": a JPEG
history found in the pixels, "file": the JPEG file's tables, "codec": the floor for subsampled chroma);
then the CPU time (`time.process_time`) of `auto`'s denoising against that of the network, over the
images it changed. LPIPS is not computed (its weights cannot be downloaded here). `--crops` writes
before/after crops of the darkest region (reference | off | auto, one row per CROP_CASES entry measured).

`--video` measures, instead, a clip: two shots panning over backlit renderings (`video_clip`, one cut),
ISO 800-like noise on every frame, encoded with x264 at each `--crf` and decoded as `cliplit enhance
clip.mp4` decodes it; enhanced with `off`, `auto` (one level per scene, `SceneDenoiser`, as the video
pipeline runs it), `auto` measured on every frame, and the best fixed level; it prints the warping error
(`cliplit.video.stability`, within each shot) and the shadow PSNR against the enhancement of the clean
clip. `--crops` writes a crop of one frame at the first CRF.

`--candidates` compares, instead, the methods that `auto` was chosen from (`_candidate_methods`), each applied
with the same gain weight and noise estimate to the same network map: shadow PSNR gain over `off` per
degradation, and CPU time against exact mode's network.

`--cost PHOTO [PHOTO ...]` measures, instead, what `auto` costs on your own photos (no truth needed):
the CPU time of the denoising against that of the network (`--mode`), per photo, as the engine runs
it (one pass up to 4 MP, tiles of 1024 above).
"""

from __future__ import annotations

import argparse
import io
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

SHADOW_GAIN = 2.0  # the shadows: where the reference's gain 1 / L exceeds this
PHOTO_SCENES = {"astronaut": (0.78, 0.05), "chelsea": (0.95, 0.0), "coffee": (0.1, 0.0)}  # light positions
SYNTHETIC_LIGHT = (0.8, 0.05)
SYNTHETIC = "synthetic"
DEFAULT_SCENES = (*PHOTO_SCENES, SYNTHETIC)
# ISO-like sensor noise on [0, 1] values: variance = shot * x + read (photon shot noise + read noise)
ISO_NOISE = {400: (2.5e-4, 1e-5), 800: (5e-4, 2e-5), 1600: (1e-3, 4e-5), 3200: (2e-3, 8e-5)}
DEFAULT_DEGRADATIONS = ("clean16", "clean8", "jpeg60", "jpeg75", "jpeg90", "iso400", "iso1600", "iso800+jpeg90",
                        "iso800+jpeg75", "jpeg75+png", "iso800+jpeg75+png", "jpeg75+crop3+png", "webp95", "avif90", "webp75",
                        "iso800+webp75", "avif60", "iso800+avif60", "heic60", "iso800+heic60")
CODECS = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF", "heic": "HEIF"}  # degradation step prefix -> file format
SIXTEEN_BIT, EIGHT_BIT = 65535, 255
# The backlit rendering (`render_backlit`)
EXPOSURE = 0.2  # the scene keeps this fraction of its light, as a camera metering for the light leaves it ...
SHADOW_GAMMA = 1.3  # ... with its shadows crushed a little more
GLOW_STRENGTH = 1.2  # the light behind the scene, screen-blended over it
GLOW_RADIUS = 0.28  # its fall-off length, as a fraction of the image height
GLOW_TINT = (1.0, 0.92, 0.78)  # warm low sun
HAZE = 0.02  # veiling glare over the whole frame
CROP_SIDE = 128  # pixels of each crop, shown at CROP_ZOOM x
CROP_ZOOM = 2
CROP_CASES = ("jpeg75", "iso1600", "iso800+jpeg75+png", "iso800+webp75")
FIXED_LEVELS = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0)  # the fixed `--denoise S` levels `auto` is compared with
# The video case (`--video`): a noisy backlit clip through x264
VIDEO_CRFS = (18, 23, 28)
VIDEO_FRAMES = 16
VIDEO_SIZE = "192x256"  # frame height x width
VIDEO_SCENES = ("astronaut", "coffee")  # two shots, panned, with a cut between them
VIDEO_ISO = 800
VIDEO_FPS = 24
STABILITY_SCALE = 1e4  # warping errors are printed x 1e4 (as bench/video_stability.py)
CROP_JPEG_QUALITY = 88


def render_backlit(photo: np.ndarray, light: tuple[float, float]) -> np.ndarray:
    """
    (H, W, 3) float in [0, 1] -> the same scene against a bright light at `light` (x, y fractions of the
    image): underexposed, its shadows crushed a little more, the light's glow screen-blended over it,
    a veiling haze; float32 in [0, 1], without noise.
    """
    height, width = photo.shape[:2]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    distance = np.hypot((x / width - light[0]) * width / height, y / height - light[1])
    glow = GLOW_STRENGTH * np.exp(-distance / GLOW_RADIUS)[..., None] * np.array(GLOW_TINT, np.float32)
    dark = EXPOSURE * photo**SHADOW_GAMMA
    return np.clip(1 - (1 - dark) * (1 - glow) + HAZE, 0, 1).astype(np.float32)


def synthetic_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Our own clean scene (H, W, 3) float32 in [0, 1]: a shaded wall and floor, soft-shaded discs, striped boxes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y /= height
    x /= width
    wall = np.stack([0.75 - 0.3 * y, 0.7 - 0.25 * y + 0.05 * x, 0.6 - 0.2 * y], axis=-1)
    floor = np.stack([0.45 + 0.1 * x, 0.35 + 0.05 * x, 0.25 + 0 * x], axis=-1)
    image = np.where((y > 0.7)[..., None], floor, wall)
    for _ in range(6):  # discs, lit from above
        cy, cx, radius = rng.uniform(0.2, 0.85), rng.uniform(0.1, 0.9), rng.uniform(0.06, 0.18)
        colour = rng.uniform(0.2, 0.95, 3).astype(np.float32)
        inside = np.hypot((y - cy) * height / width, x - cx) < radius
        shade = np.clip(1 - 0.6 * ((y - cy + 0.3 * radius) / radius) ** 2 - 0.3 * ((x - cx) / radius), 0.3, 1)
        image = np.where(inside[..., None], colour * shade[..., None], image)
    for _ in range(3):  # boxes covered with a striped fabric (period 6 pixels)
        top, left = rng.uniform(0.3, 0.7), rng.uniform(0.05, 0.7)
        box_height, box_width = rng.uniform(0.15, 0.3), rng.uniform(0.1, 0.25)
        inside = (y > top) & (y < top + box_height) & (x > left) & (x < left + box_width)
        colour = rng.uniform(0.2, 0.9, 3).astype(np.float32)
        stripes = 0.9 + 0.1 * np.sin(2 * np.pi * x * width / 6)
        image = np.where(inside[..., None], colour * (stripes * (0.8 + 0.2 * x))[..., None], image)
    return np.clip(image, 0, 1).astype(np.float32)


def backlit_scene(name: str, width: int) -> np.ndarray:
    """The clean backlit rendering of scene `name` at `width` pixels: (H, W, 3) float32 in [0, 1]."""
    from PIL import Image

    if name == SYNTHETIC:
        photo, light = synthetic_photo(width * 3 // 4, width), SYNTHETIC_LIGHT
    else:
        from skimage import data

        image = Image.fromarray(getattr(data, name)()).convert("RGB")
        image = image.resize((width, round(width * image.height / image.width)), Image.LANCZOS)
        photo, light = np.asarray(image, dtype=np.float32) / EIGHT_BIT, PHOTO_SCENES[name]
    return render_backlit(photo, light)


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    return np.floor(np.clip(pixels, 0, 1) * EIGHT_BIT + 0.5).astype(np.uint8)


def _codes(image) -> np.ndarray:
    """The 8-bit pixels (H, W, 3) uint8 of a float rendering, a uint8 array or a decoded PIL image."""
    if isinstance(image, np.ndarray):
        return image if image.dtype == np.uint8 else _to_uint8(image)
    return np.asarray(image.convert("RGB"))


def _encoded(codes: np.ndarray, file_format: str, quality: int):
    """8-bit codes -> the PIL image decoded from their file in `file_format` at `quality` (Pillow's encoders,
    pillow-heif's for HEIF: JPEG with 4:2:0 chroma, WebP (VP8), AVIF (AV1), HEIC (x265), each with its defaults)."""
    from PIL import Image

    if file_format == "HEIF":
        from pillow_heif import register_heif_opener

        register_heif_opener()
    buffer = io.BytesIO()
    Image.fromarray(codes).save(buffer, file_format, quality=quality)
    buffer.seek(0)
    image = Image.open(buffer)
    image.load()
    return image


def _noisy(pixels: np.ndarray, iso: int, seed: int) -> np.ndarray:
    shot, read = ISO_NOISE[iso]
    noise = np.random.default_rng(seed).standard_normal(pixels.shape).astype(np.float32)
    return pixels + noise * np.sqrt(shot * pixels + read)


def _stage(image, stage: str, seed: int):
    """One step of `degrade`."""
    if stage == "clean16":
        return np.floor(np.clip(image, 0, 1) * SIXTEEN_BIT + 0.5).astype(np.uint16)
    if stage == "clean8":
        return _codes(image)
    if stage.startswith("iso"):
        return _noisy(image, int(stage[len("iso"):]), seed)
    for prefix, file_format in CODECS.items():
        if stage.startswith(prefix):
            decoded = _encoded(_codes(image), file_format, int(stage[len(prefix):]))
            return decoded if file_format == "JPEG" else _codes(decoded)  # a JPEG keeps its file's tables
    if stage.startswith("crop"):
        pixels = int(stage[len("crop"):])
        return np.ascontiguousarray(_codes(image)[pixels:, pixels:])
    if stage == "png":  # the decoded pixels saved as a PNG and read back: the JPEG file's tables are gone
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(_codes(image)).save(buffer, "PNG")
        buffer.seek(0)
        return np.asarray(Image.open(buffer).convert("RGB"))
    raise ValueError(f"unknown degradation step {stage!r}")


def degrade(pixels: np.ndarray, degradation: str, seed: int = 0):
    """
    The clean rendering `pixels` (H, W, 3) float32 degraded as `degradation` says (see the module
    docstring: steps joined by "+", applied left to right): a uint8 / uint16 array, or a PIL image
    decoded from a JPEG file (with its tables).
    """
    image = pixels
    for stage in degradation.split("+"):
        image = _stage(image, stage, seed)
    return _codes(image) if isinstance(image, np.ndarray) and image.dtype == np.float32 else image


def cropped_pixels(degradation: str) -> int:
    """The rows and columns that `degradation` cuts from the top and left (its `cropN` steps)."""
    return sum(int(stage[len("crop"):]) for stage in degradation.split("+") if stage.startswith("crop"))


@dataclass
class Scores:
    psnr: float
    psnr_shadows: float
    ssim: float
    ssim_shadows: float


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB of two [0, 1] images (H, W, 3), over the pixels of `mask` (H, W) if given."""
    squared = ((a.astype(np.float64) - b) ** 2).mean(axis=2)
    mse = squared[mask].mean() if mask is not None else squared.mean()
    return float(10 * np.log10(1 / max(mse, 1e-20)))


def score(enhanced: np.ndarray, reference: np.ndarray, shadows: np.ndarray) -> Scores:
    """PSNR and SSIM (scikit-image, Gaussian-free 7x7 windows) of `enhanced` against `reference`, whole and shadows."""
    from skimage.metrics import structural_similarity

    _, ssim_map = structural_similarity(reference, enhanced, channel_axis=2, data_range=1.0, full=True)
    ssim_map = ssim_map.mean(axis=2)
    return Scores(psnr(enhanced, reference), psnr(enhanced, reference, shadows), float(ssim_map.mean()),
                  float(ssim_map[shadows].mean()))


def enhance_pixels(enhancer, image) -> tuple[np.ndarray, float]:
    """(enhanced (H, W, 3) float32 before quantization, CPU seconds) of an array / PIL image."""
    from cliplit.imaging.codec import decode_image

    decoded = decode_image(image)
    start = time.process_time()
    enhanced, _ = enhancer.enhance_decoded(decoded)
    return enhanced.pixels, time.process_time() - start


def denoise_cost(enhancer, image) -> tuple[float, float, object]:
    """(CPU seconds of the engine's illumination, CPU seconds of the `auto` denoising, its plan) on one image."""
    import torch

    from cliplit.engine.denoise import denoised_input
    from cliplit.imaging.codec import DecodedImage, decode_image

    decoded = image if isinstance(image, DecodedImage) else decode_image(image)
    pixel_values = torch.from_numpy(decoded.pixels).permute(2, 0, 1).unsqueeze(0)
    start = time.process_time()
    illumination = enhancer.illumination(pixel_values)[0, 0].numpy()
    network = time.process_time() - start
    start = time.process_time()
    _, plan = denoised_input(decoded.pixels, illumination, enhancer.strength, "auto", decoded.jpeg)
    return network, time.process_time() - start, plan


def photo_costs(enhancer, paths: list[Path]) -> None:
    """Print, for each photo, the CPU time of `auto` denoising against that of the network (see the module docstring)."""
    from cliplit.imaging.files import read_image

    for path in paths:
        decoded = read_image(path)
        network, denoise, plan = denoise_cost(enhancer, decoded)
        height, width = decoded.pixels.shape[:2]
        layout = "not a JPEG" if decoded.jpeg is None else "JPEG, 4:2:0" if decoded.jpeg.chroma_table is not None else "JPEG"
        print(f"{path.name}: {width} x {height} ({layout}; auto: {plan_label(plan)}): network {network:.2f} s, "
              f"denoising {denoise:.2f} s CPU = {denoise / network:.1%} of {enhancer.settings.mode} mode's network")


def darkest_box(gain: np.ndarray, side: int) -> tuple[int, int]:
    """(top, left) of the side x side window with the highest mean gain."""
    import cv2

    side = min(side, *gain.shape)
    mean = cv2.boxFilter(gain.astype(np.float32), -1, (side, side), normalize=True, borderType=cv2.BORDER_REPLICATE)
    half = side // 2
    inner = mean[half : gain.shape[0] - (side - half) + 1, half : gain.shape[1] - (side - half) + 1]
    top, left = np.unravel_index(np.argmax(inner), inner.shape)
    return int(top), int(left)


def write_crops(path: Path, rows: list[tuple[str, list[np.ndarray]]]) -> None:
    """A JPEG of crop rows (reference | off | auto), zoomed CROP_ZOOM x with nearest neighbours."""
    from PIL import Image

    strips = [np.concatenate([np.kron(_to_uint8(c), np.ones((CROP_ZOOM, CROP_ZOOM, 1), np.uint8)) for c in crops], axis=1)
              for _, crops in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(strips, axis=0)).save(path, quality=CROP_JPEG_QUALITY)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB; rows: {', '.join(n for n, _ in rows)}; "
          "columns: enhancement of the clean image | --denoise off | --denoise auto)")


def _candidate_methods():
    """name -> clean(pixels (H, W, 3) float32, gain (H, W), plan `DenoisePlan`) -> (H, W, 3), before the gain weight."""
    import cv2

    from cliplit.engine import denoise

    def noise_level(plan):  # what the generic filters are given: the measured noise, at least 1 level
        return max(plan.sigma, 1 / EIGHT_BIT)

    def ours(pixels, gain, plan):
        return denoise.denoise_region(pixels, np.full_like(gain, denoise.FULL_GAIN), plan)

    def ours_without_deblocking(pixels, gain, plan):
        return ours(pixels, gain, denoise.DenoisePlan(plan.sigma, None))

    def ours_without_chroma_upsampling(pixels, gain, plan):  # the decoder's 4:2:0 chroma, luma-guided filter
        jpeg = replace(plan.jpeg, chroma_table=None) if plan.jpeg is not None else None
        return ours(pixels, gain, denoise.DenoisePlan(plan.sigma, jpeg))

    def gaussian(pixels, gain, plan):
        return cv2.GaussianBlur(pixels, (5, 5), 1.0)

    def rgb_bilateral(pixels, gain, plan):
        return cv2.bilateralFilter(pixels, 7, 4 * noise_level(plan), 2.0)

    def rgb_guided(pixels, gain, plan):  # each channel guided by the luma
        luma = cv2.cvtColor(pixels, cv2.COLOR_RGB2YCrCb)[:, :, 0]
        eps = (2 * noise_level(plan)) ** 2
        return np.stack([denoise.guided_filter(luma, pixels[:, :, c], 2, eps) for c in range(3)], axis=2)

    def non_local_means(pixels, gain, plan):
        strength = 3 * noise_level(plan) * EIGHT_BIT
        codes = _to_uint8(pixels)
        return cv2.fastNlMeansDenoisingColored(codes, None, strength, strength, 5, 15).astype(np.float32) / EIGHT_BIT

    return {"ours (auto)": ours, "ours, no deblocking": ours_without_deblocking,
            "ours, no chroma upsampling": ours_without_chroma_upsampling, "gaussian 5x5": gaussian,
            "bilateral RGB": rgb_bilateral, "guided RGB": rgb_guided, "non-local means": non_local_means}


def compare_candidates(engine, scenes, degradations, width) -> None:
    """Print the shadow PSNR gain over `off` of each candidate method (see the module docstring)."""
    import torch

    from cliplit.engine import denoise
    from cliplit.imaging.codec import decode_image
    from cliplit.model.network import apply_illumination

    methods = _candidate_methods()
    gains = {d: {m: [] for m in methods} for d in degradations}
    cost = {m: [] for m in methods}
    for name in scenes:
        clean = backlit_scene(name, width)
        reference, _ = enhance_pixels(engine, clean)
        clean_values = torch.from_numpy(clean).permute(2, 0, 1).unsqueeze(0)
        shadows = engine.illumination(clean_values)[0, 0].numpy() ** -engine.strength > SHADOW_GAIN
        for degradation in degradations:
            decoded = decode_image(degrade(clean, degradation, seed=len(name)))
            values = torch.from_numpy(decoded.pixels).permute(2, 0, 1).unsqueeze(0)
            start = time.process_time()
            illumination = engine.illumination(values)
            network_seconds = time.process_time() - start
            gain = illumination[0, 0].numpy() ** -engine.strength
            plan = denoise.resolve_plan("auto", decoded.pixels, gain, decoded.jpeg) or denoise.DenoisePlan(0.0)
            weight = denoise.gain_weight(gain)[:, :, None]

            def enhanced(pixels):
                inputs = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0)
                return apply_illumination(inputs, illumination, engine.strength)[0].permute(1, 2, 0).numpy()

            off = psnr(enhanced(decoded.pixels), reference, shadows)
            for method_name, method in methods.items():
                start = time.process_time()
                cleaned = method(decoded.pixels, gain, plan)
                cost[method_name].append((time.process_time() - start) / network_seconds)
                mixed = decoded.pixels + weight * (cleaned - decoded.pixels)
                gains[degradation][method_name].append(psnr(enhanced(mixed), reference, shadows) - off)
    print(f"shadow PSNR gain over --denoise off (dB, mean over {', '.join(scenes)} at {width} px; same map, gain weight, noise estimate)")
    print(f"{'method':<28}" + "".join(f"{d:>15}" for d in degradations) + f"{'CPU vs network':>16}")
    for method_name in methods:
        cells = "".join(f"{np.mean(gains[d][method_name]):>+15.2f}" for d in degradations)
        print(f"{method_name:<28}{cells}{np.mean(cost[method_name]):>16.1%}")


def divided(pixels: np.ndarray, illumination: np.ndarray, strength: float) -> np.ndarray:
    """The enhancement of `pixels` (H, W, 3) by its map `illumination` (H, W), as the engine divides."""
    import torch

    from cliplit.model.network import apply_illumination

    values = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0)
    return apply_illumination(values, torch.from_numpy(illumination)[None, None], strength)[0].permute(1, 2, 0).numpy()


def network_map(engine, pixels: np.ndarray) -> tuple[np.ndarray, float]:
    """(the engine's illumination map (H, W) of `pixels` (H, W, 3), CPU seconds it took)."""
    import torch

    start = time.process_time()
    illumination = engine.illumination(torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0))[0, 0].numpy()
    return illumination, time.process_time() - start


def settings_outputs(decoded, illumination: np.ndarray, strength: float, tile: int | None = None) -> tuple[dict, object, float]:
    """
    The enhancement of `decoded` (a `DecodedImage`) on its map `illumination` with each setting: "off",
    "auto" and each of FIXED_LEVELS (as `--denoise S`), as `Enhancer` applies them (`denoised_input`,
    then the division). Returns ({setting name: (H, W, 3)}, auto's plan (None: unchanged), auto's CPU seconds).
    """
    from cliplit.engine.denoise import denoised_input, known_compression, resolve_plan

    start = time.process_time()
    cleaned, plan = denoised_input(decoded.pixels, illumination, strength, "auto", decoded.jpeg, tile)
    cost = time.process_time() - start
    outputs = {"off": divided(decoded.pixels, illumination, strength), "auto": divided(cleaned, illumination, strength)}
    gain = np.power(illumination, -float(strength), dtype=np.float32)
    compression = (plan.jpeg, plan.history) if plan is not None else known_compression(decoded.pixels, decoded.jpeg)
    for level in FIXED_LEVELS:
        fixed = resolve_plan(level, decoded.pixels, gain, decoded.jpeg, compression)
        cleaned, _ = denoised_input(decoded.pixels, illumination, strength, fixed or "off", decoded.jpeg, tile)
        outputs[f"{level:g}"] = divided(cleaned, illumination, strength)
    return outputs, plan, cost


def plan_label(plan) -> str:
    """A short name of what `auto` did: '-' (nothing), the level, a JPEG history's quality, the codec floor."""
    if plan is None:
        return "-"
    label = f"{plan.sigma * EIGHT_BIT:.2f}"
    if plan.history is not None:
        label += f" hist q{plan.history.quality}"
    elif plan.jpeg is not None:
        label += " file"
    if plan.level is not None and plan.level.codec:
        label += " codec"
    return label


def measure_photos(engine, args) -> None:
    """The table of docs/denoise.md: each degradation, off / auto / the best fixed level, whole image and shadows."""
    from cliplit.imaging.codec import decode_image

    shadow, whole, ssims, labels, costs, identical, crops = {}, {}, {}, {}, [], {}, {}
    for name in args.scenes:
        clean = backlit_scene(name, args.width)
        references = {}
        for degradation in args.degradations:
            crop = cropped_pixels(degradation)
            if crop not in references:  # the truth of a crop is the crop of the truth, enhanced
                truth = np.ascontiguousarray(clean[crop:, crop:])
                truth_map, _ = network_map(engine, truth)
                references[crop] = (divided(truth, truth_map, engine.strength), truth_map ** -engine.strength > SHADOW_GAIN)
            reference, shadows = references[crop]
            decoded = decode_image(degrade(clean, degradation, seed=len(name)))
            illumination, network_seconds = network_map(engine, decoded.pixels)
            outputs, plan, cost = settings_outputs(decoded, illumination, engine.strength, engine.settings.tile_size)
            if plan is not None:
                costs.append(cost / network_seconds)
            labels.setdefault(degradation, []).append(plan_label(plan))
            identical.setdefault(degradation, []).append(np.array_equal(outputs["auto"], outputs["off"]))
            for setting, output in outputs.items():
                shadow.setdefault(degradation, {}).setdefault(setting, []).append(psnr(output, reference, shadows))
                whole.setdefault(degradation, {}).setdefault(setting, []).append(psnr(output, reference))
            for setting in ("off", "auto"):
                ssims.setdefault(degradation, {}).setdefault(setting, []).append(score(outputs[setting], reference, shadows).ssim_shadows)
            if name == args.scenes[0] and degradation in CROP_CASES:
                gain = illumination ** -engine.strength
                side = min(CROP_SIDE, *gain.shape)
                top, left = darkest_box(gain, side)
                box = (slice(top, top + side), slice(left, left + side))
                crops[degradation] = [reference[box], outputs["off"][box], outputs["auto"][box]]
    print(f"scenes: {', '.join(args.scenes)} at {args.width} px wide, {args.mode} mode; shadows: gain > {SHADOW_GAIN:g}; "
          f"PSNR (dB) against the enhancement of the clean rendering, mean over the scenes; best: the fixed --denoise S "
          f"(of {', '.join(f'{level:g}' for level in FIXED_LEVELS)}) of the best mean shadow PSNR; "
          "LPIPS: not computed (its network weights are not available offline)")
    print(f"{'degradation':<20} {'whole off':>9} {'auto':>6} {'best':>6} | {'shadows off':>11} {'auto':>6} {'gain':>6} "
          f"{'best':>6} {'gain':>6} {'S':>4} | {'SSIM sh. off':>12} {'auto':>6} | {'min gain':>8} | {'auto = off':>10} | auto's level per scene")
    for degradation in args.degradations:
        mean_shadow = {setting: float(np.mean(values)) for setting, values in shadow[degradation].items()}
        mean_whole = {setting: float(np.mean(values)) for setting, values in whole[degradation].items()}
        best = max((f"{level:g}" for level in FIXED_LEVELS), key=mean_shadow.get)
        off, auto = mean_shadow["off"], mean_shadow["auto"]
        smallest = min(a - o for a, o in zip(shadow[degradation]["auto"], shadow[degradation]["off"]))
        ssim_off, ssim_auto = (float(np.mean(ssims[degradation][k])) for k in ("off", "auto"))
        print(f"{degradation:<20} {mean_whole['off']:>9.2f} {mean_whole['auto']:>6.2f} {mean_whole[best]:>6.2f} | "
              f"{off:>11.2f} {auto:>6.2f} {auto - off:>+6.2f} {mean_shadow[best]:>6.2f} {mean_shadow[best] - off:>+6.2f} {best:>4} | "
              f"{ssim_off:>12.4f} {ssim_auto:>6.4f} | {smallest:>+8.2f} | {sum(identical[degradation]):>4} of {len(identical[degradation]):<3} | "
              f"{', '.join(labels[degradation])}")
    print("shadow PSNR gain over off (dB, mean over the scenes) of auto and of each fixed level:")
    print(f"{'degradation':<20} {'auto':>6} " + " ".join(f"{f'S={level:g}':>6}" for level in FIXED_LEVELS))
    for degradation in args.degradations:
        off = float(np.mean(shadow[degradation]["off"]))
        gains = [float(np.mean(shadow[degradation][setting])) - off for setting in ("auto", *(f"{level:g}" for level in FIXED_LEVELS))]
        print(f"{degradation:<20} " + " ".join(f"{gain:>+6.2f}" for gain in gains))
    if costs:
        print(f"auto's denoising CPU time: {np.mean(costs):.1%} of {args.mode} mode's network on average (max {max(costs):.1%}; "
              f"{len(costs)} images it changed; CPU time, time.process_time)")
    if args.crops is not None and crops:
        write_crops(args.crops, [(k, crops[k]) for k in CROP_CASES if k in crops])


def video_clip(frames: int, height: int, width: int) -> list[np.ndarray]:
    """
    The clean backlit clip, (height, width, 3) float32 frames: a pan (`cliplit.video.scenes`) over the
    backlit rendering of each of VIDEO_SCENES, half the frames each (one cut between them).
    """
    from cliplit.video.scenes import PAN_PIXELS_PER_FRAME, make_scene

    clip = []
    for index, name in enumerate(VIDEO_SCENES):
        count = frames // len(VIDEO_SCENES) if index < len(VIDEO_SCENES) - 1 else frames - len(clip)
        scene_width = width + count * PAN_PIXELS_PER_FRAME
        photo = backlit_scene(name, scene_width)
        while photo.shape[0] < height:  # a landscape photo: wider until it is tall enough
            scene_width += height - photo.shape[0]
            photo = backlit_scene(name, scene_width)
        clip += make_scene("pan", photo, count, height, width)
    return clip


def h264(frames: list[np.ndarray], crf: int) -> list:
    """8-bit RGB `frames` encoded with x264 (4:2:0, CRF `crf`, the `fast` preset as `cliplit enhance` writes) and
    decoded again as the video pipeline decodes them (`DecodedImage`s)."""
    import tempfile

    import av

    from cliplit.video.transcode import frame_to_image

    height, width = frames[0].shape[:2]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=VIDEO_FPS, options={"crf": str(crf), "preset": "fast"})
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())
        with av.open(str(path)) as container:
            return [frame_to_image(frame) for frame in container.decode(video=0)]


def measure_video(engine, auto_engine, args) -> None:
    """The video case of docs/denoise.md: a noisy backlit clip through H.264 at each --crf, enhanced with
    off, auto (one level per scene, as `cliplit enhance clip.mp4` does), auto measured on every frame and each
    fixed level; warping error and shadow PSNR against the enhancement of the clean clip. `engine`, `auto_engine`:
    `Enhancer`s with the same settings, denoise off and auto."""
    from cliplit.video.scene_denoise import SceneDenoiser
    from cliplit.video.stability import motion, warping_error

    height, width = (int(side) for side in args.size.split("x"))
    clean = video_clip(args.frames, height, width)
    shot = args.frames // len(VIDEO_SCENES)
    shots = [slice(index * shot, (index + 1) * shot if index < len(VIDEO_SCENES) - 1 else args.frames)
             for index in range(len(VIDEO_SCENES))]  # as `video_clip` makes them
    motions = [motion(clean[frames]) for frames in shots]

    def warping(frames: list[np.ndarray]) -> float:  # within each shot (not across the cut), x STABILITY_SCALE
        errors = [warping_error(frames[frames_of], pairs=pairs) for frames_of, pairs in zip(shots, motions)]
        return float(np.mean(errors)) * STABILITY_SCALE
    references, shadows = [], []
    for frame in clean:
        illumination, _ = network_map(engine, frame)
        references.append(divided(frame, illumination, engine.strength))
        shadows.append(illumination ** -engine.strength > SHADOW_GAIN)
    noisy = [_codes(_noisy(frame, VIDEO_ISO, seed)) for seed, frame in enumerate(clean)]
    print(f"video: {args.frames} frames of {width} x {height} (two pans, one cut), ISO {VIDEO_ISO}-like noise, x264 4:2:0 "
          f"'fast'; {engine.settings.mode} mode; warping error x 1e4 along the clean clip's motion; shadow PSNR (dB, gain > "
          f"{SHADOW_GAIN:g}) against the enhancement of the clean clip, mean over frames")
    print(f"enhancement of the clean clip: warping error {warping(references):.2f}")
    print(f"{'CRF':>4} {'setting':<18} {'warping':>8} {'shadow PSNR':>11} {'gain':>6} | auto's levels per scene")
    crops = None
    for crf in args.crf:
        decoded = h264(noisy, crf)
        maps = [network_map(engine, image.pixels)[0] for image in decoded]
        outputs: dict[str, list[np.ndarray]] = {}
        for image, illumination in zip(decoded, maps):
            for setting, output in settings_outputs(image, illumination, engine.strength, engine.settings.tile_size)[0].items():
                outputs.setdefault("auto, every frame" if setting == "auto" else setting, []).append(output)
        scenes = SceneDenoiser(auto_engine)
        outputs["auto"] = [image.pixels for image in scenes(decoded)]
        off = np.mean([psnr(o, r, m) for o, r, m in zip(outputs["off"], references, shadows)])
        best = max((f"{level:g}" for level in FIXED_LEVELS),
                   key=lambda s: np.mean([psnr(o, r, m) for o, r, m in zip(outputs[s], references, shadows)]))
        levels = ", ".join(plan_label(plan) for _, plan in scenes.scenes)
        for setting in ("off", "auto", "auto, every frame", best):
            shadow = np.mean([psnr(o, r, m) for o, r, m in zip(outputs[setting], references, shadows)])
            name = f"best fixed {setting}" if setting == best else setting
            print(f"{crf:>4} {name:<18} {warping(outputs[setting]):>8.2f} "
                  f"{shadow:>11.2f} {shadow - off:>+6.2f} | {levels if setting == 'auto' else ''}")
        if crops is None:
            frame = len(clean) // (2 * len(VIDEO_SCENES))  # the middle of the first shot
            gain = maps[frame] ** -engine.strength
            side = min(CROP_SIDE, *gain.shape)
            top, left = darkest_box(gain, side)
            box = (slice(top, top + side), slice(left, left + side))
            crops = [(f"H.264 CRF {crf}, frame {frame + 1}", [references[frame][box], outputs["off"][frame][box], outputs["auto"][frame][box]])]
    if args.crops is not None and crops:
        write_crops(args.crops, crops)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="authors' .pth checkpoint, model folder or published name")
    parser.add_argument("--width", type=int, default=512, help="scene width in pixels (default 512)")
    parser.add_argument("--scenes", nargs="+", default=list(DEFAULT_SCENES), choices=DEFAULT_SCENES)
    parser.add_argument("--degradations", nargs="+", default=list(DEFAULT_DEGRADATIONS))
    parser.add_argument("--crops", type=Path, default=None, help="write before/after crops (JPEG) here")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--mode", default="exact", choices=("exact", "fast"), help="engine mode (default exact)")
    parser.add_argument("--candidates", action="store_true", help="compare the candidate methods instead (module docstring)")
    parser.add_argument("--cost", nargs="+", type=Path, metavar="PHOTO", default=None,
                        help="measure the denoising's CPU time on these photos instead (module docstring)")
    parser.add_argument("--video", action="store_true", help="measure the video case instead (module docstring)")
    parser.add_argument("--crf", type=int, nargs="+", default=list(VIDEO_CRFS), help="x264 CRFs of the video case")
    parser.add_argument("--frames", type=int, default=VIDEO_FRAMES, help="frames of the video case")
    parser.add_argument("--size", default=VIDEO_SIZE, help=f"HxW of the video case's frames (default {VIDEO_SIZE})")
    args = parser.parse_args(argv)

    import torch

    from cliplit.engine.enhancer import Enhancer
    from cliplit.model.loading import load_network

    if args.threads:
        torch.set_num_threads(args.threads)
    network = load_network(args.model)
    if args.candidates:
        compare_candidates(Enhancer(network), args.scenes, args.degradations, args.width)
        return 0
    if args.cost:
        photo_costs(Enhancer(network, mode=args.mode), args.cost)
        return 0
    engine = Enhancer(network, mode=args.mode)
    if args.video:
        measure_video(engine, Enhancer(network, mode=args.mode, denoise="auto"), args)
    else:
        measure_photos(engine, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
