"""Quality of `--denoise`: enhance degraded backlit photos with `--denoise off` and `auto`, against the truth.

Usage (from the repository root):

    python bench/quality.py --model ../shared/reference/clip-lit/enhancement_model.pth \
        [--width 512] [--scenes astronaut chelsea coffee synthetic] [--degradations jpeg75 iso1600 ...] \
        [--crops docs/images/denoise_crops.jpg]

Scenes: the CC0 / public-domain photos that examples/ is rendered from (scikit-image's data module:
astronaut, chelsea, coffee) and our own synthetic rendering (a shaded room with objects and a striped
fabric, `synthetic_photo`), resized to --width and rendered backlit (`render_backlit`: underexposed, with a bright light
screen-blended from one corner; noise-free, so that the rendering is the truth).
This clean float rendering is the truth; its enhancement (exact mode, published pixels) is the reference.

Degradations, as cameras and the web do them (`degrade`): `clean16` (the truth at 16 bits: what
denoising must not spoil), `clean8` (8-bit quantization only), `jpegQ` (8-bit JPEG at quality Q, 4:2:0
chroma, as Pillow saves), `isoN` (signal-dependent sensor noise of an ISO-N-like level, then 8 bits),
`isoN+jpegQ` (both, as a phone does: noise, then JPEG).

For each degraded image the script enhances it with `--denoise off` and `auto` (exact mode, or `--mode fast`) and
prints PSNR and SSIM against the reference, on the whole image and on the shadows (gain 1 / L > 2 in the
reference's map), averaged over the scenes; the CPU time of the denoising against that of exact
mode's network; LPIPS is not computed (its weights cannot be downloaded here). `--crops` writes
before/after crops of the darkest region (reference | off | auto, for JPEG q75 and ISO 1600).

`--candidates` compares, instead, the methods that `auto` was chosen from (`CANDIDATES`), each applied
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
CROP_CASES = ("jpeg75", "iso1600")
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


def denoise_cost(enhancer, image) -> tuple[float, float]:
    """(CPU seconds of exact mode's illumination, CPU seconds of the `auto` denoising) on one image."""
    import torch

    from cliplit.engine.denoise import denoised_input
    from cliplit.imaging.codec import DecodedImage, decode_image

    decoded = image if isinstance(image, DecodedImage) else decode_image(image)
    pixel_values = torch.from_numpy(decoded.pixels).permute(2, 0, 1).unsqueeze(0)
    start = time.process_time()
    illumination = enhancer.illumination(pixel_values)[0, 0].numpy()
    network = time.process_time() - start
    start = time.process_time()
    denoised_input(decoded.pixels, illumination, enhancer.strength, "auto", decoded.jpeg)
    return network, time.process_time() - start


def photo_costs(enhancer, paths: list[Path]) -> None:
    """Print, for each photo, the CPU time of `auto` denoising against that of the network (see the module docstring)."""
    from cliplit.imaging.files import read_image

    for path in paths:
        decoded = read_image(path)
        network, denoise = denoise_cost(enhancer, decoded)
        height, width = decoded.pixels.shape[:2]
        layout = "not a JPEG" if decoded.jpeg is None else "JPEG, 4:2:0" if decoded.jpeg.chroma_table is not None else "JPEG"
        print(f"{path.name}: {width} x {height} ({layout}): network {network:.2f} s, denoising {denoise:.2f} s "
              f"CPU = {denoise / network:.1%} of {enhancer.mode} mode's network")


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
    engines = {setting: Enhancer(network, mode=args.mode, denoise=setting) for setting in ("off", "auto")}
    results: dict[str, dict[str, list[Scores]]] = {d: {"off": [], "auto": []} for d in args.degradations}
    costs, crops = [], {}
    for name in args.scenes:
        clean = backlit_scene(name, args.width)
        reference, _ = enhance_pixels(engines["off"], clean)
        pixel_values = torch.from_numpy(clean).permute(2, 0, 1).unsqueeze(0)
        gain = 1 / engines["off"].illumination(pixel_values)[0, 0].numpy() ** engines["off"].strength
        shadows = gain > SHADOW_GAIN
        for degradation in args.degradations:
            degraded = degrade(clean, degradation, seed=len(name))
            outputs = {}
            for setting, engine in engines.items():
                outputs[setting], _ = enhance_pixels(engine, degraded)
                results[degradation][setting].append(score(outputs[setting], reference, shadows))
            if degradation in ("jpeg75", "iso1600"):
                costs.append(denoise_cost(engines["auto"], degraded))
            if name == args.scenes[0] and degradation in CROP_CASES:
                side = min(CROP_SIDE, *gain.shape)
                top, left = darkest_box(gain, side)
                box = (slice(top, top + side), slice(left, left + side))
                crops[degradation] = [reference[box], outputs["off"][box], outputs["auto"][box]]
    print(f"scenes: {', '.join(args.scenes)} at {args.width} px wide; shadows: gain > {SHADOW_GAIN:g}; "
          "LPIPS: not computed (its network weights are not available offline)")
    header = (f"{'degradation':<12} {'PSNR off':>9} {'auto':>7} {'gain':>6} | {'shadows off':>11} {'auto':>7} {'gain':>6} | "
              f"{'SSIM off':>8} {'auto':>7} | {'shadows off':>11} {'auto':>7} | {'min shadow gain':>15}")
    print(header)
    for degradation, by_setting in results.items():
        off, auto = ({field: float(np.mean([getattr(s, field) for s in by_setting[k]])) for field in Scores.__dataclass_fields__}
                     for k in ("off", "auto"))
        print(f"{degradation:<12} {off['psnr']:>9.2f} {auto['psnr']:>7.2f} {auto['psnr'] - off['psnr']:>+6.2f} | "
              f"{off['psnr_shadows']:>11.2f} {auto['psnr_shadows']:>7.2f} {auto['psnr_shadows'] - off['psnr_shadows']:>+6.2f} | "
              f"{off['ssim']:>8.4f} {auto['ssim']:>7.4f} | {off['ssim_shadows']:>11.4f} {auto['ssim_shadows']:>7.4f} | "
              f"{min(a.psnr_shadows - o.psnr_shadows for a, o in zip(by_setting['auto'], by_setting['off'])):>+15.2f}")
    if costs:
        ratios = [denoise / network for network, denoise in costs]
        print(f"denoising CPU time: {np.mean(ratios):.1%} of {args.mode} mode's network on average (max {max(ratios):.1%}; "
              f"{len(costs)} images, jpeg75 and iso1600 inputs)")
    if args.crops is not None and crops:
        write_crops(args.crops, [(k, crops[k]) for k in CROP_CASES if k in crops])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
