"""Exact tiled inference: tiles give the whole-image pixels, memory follows the tile size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import textured_pixels as random_image

from cliplit.engine.enhancer import Enhancer
from cliplit.engine.memory import MAX_TILE_WORKSPACE_BYTES, auto_tile_size, bytes_per_pixel
from cliplit.engine.passes import global_pooled, tiled_pass
from cliplit.engine.pyramid import average_pooled, interpolation_matrix, pooling_matrix
from cliplit.engine.runtime import Runtime
from cliplit.engine.tiles import axis_spans, balanced_tile, plan_tiles
from cliplit.errors import SettingsError
from cliplit.model.network import CLIPLITNetwork

ONE_LEVEL = 1
HALO = CLIPLITNetwork().encoder_radius + CLIPLITNetwork().decoder_radius
# Float rounding between tiled and whole-image sums; far below one 8-bit level (1/255 ~ 4e-3).
ILLUMINATION_TOLERANCE = 1e-5
POOLING_TOLERANCE = 5e-7  # a few float32 roundings of averages up to 0.35


def to_levels(pixels: torch.Tensor, illumination: torch.Tensor) -> np.ndarray:
    return torch.floor((pixels / illumination).clamp(0, 1) * 255 + 0.5).to(torch.int16).numpy()


@pytest.mark.parametrize(
    ("height", "width", "tile"),
    [
        (67, 45, 24),  # odd sizes, cores smaller than the halo
        (65, 129, 64),  # last core one pixel wide/high: a tile border one pixel from the image edge
        (50, 97, 96),  # one tile border a single pixel from the right edge, odd width
    ],
)
def test_tiled_equals_whole_image(reference_model, height, width, tile):
    pixels = random_image(height, width, seed=height + width)
    with torch.inference_mode():
        whole = reference_model.estimate_illumination(pixels)
    tiled = Enhancer(reference_model, tile_size=tile).illumination(pixels)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max().item() < ILLUMINATION_TOLERANCE
    assert np.abs(to_levels(pixels, tiled) - to_levels(pixels, whole)).max() <= ONE_LEVEL


def test_tiles_that_do_not_start_at_the_border_see_no_padding(reference_model):
    """Tile borders at every offset near a core edge: compare the seams' rows and columns themselves."""
    pixels = random_image(70, 70, seed=3)
    with torch.inference_mode():
        whole = reference_model.estimate_illumination(pixels)
    tile = 35
    tiled = Enhancer(reference_model, tile_size=tile).illumination(pixels)
    seams = [tile - 1, tile]
    assert (tiled[..., seams, :] - whole[..., seams, :]).abs().max().item() < ILLUMINATION_TOLERANCE
    assert (tiled[..., :, seams] - whole[..., :, seams]).abs().max().item() < ILLUMINATION_TOLERANCE


def test_whole_image_option_and_runtime_reuse(reference_model):
    pixels = random_image(40, 52)
    with torch.inference_mode():
        whole = reference_model.estimate_illumination(pixels)
    for tile_size in (0, None, 32):
        enhancer = Enhancer(reference_model, tile_size=tile_size)
        for _ in range(2):  # the second image reuses the kept buffers
            result = enhancer.illumination(pixels)
            assert (result - whole).abs().max().item() < ILLUMINATION_TOLERANCE


def test_enhance_image_tiled_matches_default(reference_model):
    array = (random_image(45, 61, seed=7)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    default = Enhancer(reference_model).enhance(array, output_type="np")
    tiled = Enhancer(reference_model, tile_size=32).enhance(array, output_type="np")
    assert default.dtype == tiled.dtype == np.uint8
    assert np.abs(default.astype(np.int16) - tiled.astype(np.int16)).max() <= ONE_LEVEL


@pytest.mark.parametrize("size", [1, 7, 64, 100, 131])
@pytest.mark.parametrize("tile", [1, 16, 50, 200])
def test_axis_spans_cover_and_keep_real_neighbours(size, tile):
    spans = axis_spans(size, tile, HALO)
    covered = np.zeros(size, dtype=int)
    lengths = {stop - start for _, _, start, stop in spans}
    assert len(lengths) == 1  # one input shape for every tile
    for core_start, core_stop, input_start, input_stop in spans:
        covered[core_start:core_stop] += 1
        assert 0 <= input_start <= core_start < core_stop <= input_stop <= size
        assert input_start == 0 or core_start - input_start >= HALO
        assert input_stop == size or input_stop - core_stop >= HALO
    assert (covered == 1).all()


@pytest.mark.parametrize(("size", "tile", "cores"), [(4000, 992, 5), (6000, 992, 7), (1536, 992, 2), (100, 100, 1), (101, 100, 2)])
def test_balanced_tiles_leave_no_nearly_empty_edge_tile(size, tile, cores):
    spans = axis_spans(size, balanced_tile(size, tile), HALO)
    lengths = [stop - start for start, stop, _, _ in spans]
    assert len(spans) == cores and max(lengths) <= tile and max(lengths) - min(lengths) < cores  # nearly equal


def test_balanced_tiling_equals_the_whole_image_and_compiled_runtimes_keep_one_shape(reference_model):
    pixels = random_image(70, 101, seed=11)
    with torch.inference_mode():
        whole = reference_model.estimate_illumination(pixels)
    tiled = Enhancer(reference_model, tile_size=64).illumination(pixels)  # 70 -> 2 x 35 rows, 101 -> 2 x 51 columns
    assert (tiled - whole).abs().max().item() < ILLUMINATION_TOLERANCE
    shapes = {(t.input.height, t.input.width) for t in plan_tiles(70, 101, 64, HALO, balanced=False)}
    assert len(shapes) == 1


def test_plan_tiles_is_row_major_and_covers_the_image():
    tiles = plan_tiles(70, 90, 32, HALO)
    assert len(tiles) == 3 * 3
    area = sum(t.core.height * t.core.width for t in tiles)
    assert area == 70 * 90
    assert [t.core.top for t in tiles] == sorted(t.core.top for t in tiles)


@pytest.mark.parametrize("size", [1, 5, 6, 7, 13, 100])
@pytest.mark.parametrize("bins", [1, 2, 3, 6])
def test_matrices_match_adaptive_pooling_and_align_corners_upsampling(size, bins):
    values = torch.rand(1, 1, size, 1, dtype=torch.float64)
    cells = pooling_matrix(size, bins, 0, size).double()
    pooled = (cells @ values[0, 0, :, 0]) / cells.sum(1)
    expected = F.adaptive_avg_pool2d(values, (bins, 1))[0, 0, :, 0]
    assert torch.allclose(pooled, expected)
    grid = torch.rand(1, 1, bins, 1)
    upsampled = interpolation_matrix(size, bins, 0, size) @ grid[0, 0, :, 0]
    expected_up = F.interpolate(grid, size=(size, 1), mode="bilinear", align_corners=True)[0, 0, :, 0]
    assert torch.allclose(upsampled, expected_up, atol=1e-6)


def test_global_pooled_equals_adaptive_average_pooling(reference_model):
    pixels = random_image(53, 71, seed=5)
    runtime = Runtime(reference_model)
    with torch.inference_mode():
        features = reference_model.encode(pixels)
    pooled = global_pooled(runtime, pixels, tile=32)
    for bins, grid in zip(runtime.bins, pooled):
        assert torch.allclose(grid, F.adaptive_avg_pool2d(features, bins), atol=1e-6)


def test_average_pooling_of_a_large_map_is_accurate():
    """The whole-image pass pools with `average_pooled`: float64 adaptive pooling within float32 rounding
    on a 3 MP map (PyTorch's float32 pooling: up to 8e-6 off here, 5.6e-4 on a 3 MP photo's features)."""
    features = torch.rand(1, 4, 1536, 2048, generator=torch.Generator().manual_seed(1)) * 0.35
    bins = CLIPLITNetwork().pyramid_pooling.bins
    for b, grid in zip(bins, average_pooled(features.contiguous(memory_format=torch.channels_last), bins)):
        expected = F.adaptive_avg_pool2d(features.double(), b)
        assert grid.dtype == torch.float32 and (grid.double() - expected).abs().max().item() < POOLING_TOLERANCE


def test_auto_tile_size_follows_the_memory_not_the_image():
    plenty = 32 << 30  # half of it (the automatic budget) is less than a whole 24 MP pass
    assert auto_tile_size(1000, 1000, "cpu", torch.float32, memory_bytes=plenty) is None
    tile = auto_tile_size(6000, 4000, "cpu", torch.float32, memory_bytes=plenty, halo=HALO)
    assert tile is not None and (tile + 2 * HALO) ** 2 * bytes_per_pixel(torch.float32) <= MAX_TILE_WORKSPACE_BYTES
    small_budget = 256 << 20
    small = auto_tile_size(6000, 4000, "cpu", torch.float32, memory_bytes=small_budget, halo=HALO)
    assert small < tile
    # the same tile for a larger image: memory follows the tile size, not the image size
    assert auto_tile_size(12000, 8000, "cpu", torch.float32, memory_bytes=small_budget, halo=HALO) == small


def test_tiled_pass_rejects_batches(reference_model):
    with pytest.raises(ValueError, match="shape"):
        tiled_pass(Runtime(reference_model), torch.rand(2, 3, 8, 8), 4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"mode": "quick"}, "mode must be"), ({"tile_size": -1}, "tile size"), ({"tile_size": 1}, "at least 16"),
     ({"precision": "fp8"}, "precision"), ({"fast_downscale": 0.5}, "downscale"), ({"strength": -1}, "strength"),
     ({"strength": float("nan")}, "strength"), ({"device": "foo"}, "not a device")],
)
def test_bad_settings_are_refused_when_the_engine_is_built(kwargs, message):
    with pytest.raises(SettingsError, match=message):
        Enhancer(CLIPLITNetwork(), **kwargs)


def test_strength_default_is_the_models_config_and_a_call_overrides_it():
    network = CLIPLITNetwork()
    network.start_from_identity()
    pixels = random_image(24, 24)
    image = pixels[0].permute(1, 2, 0).numpy()
    softer = CLIPLITNetwork(type(network.config)(default_strength=0.5))
    softer.load_state_dict(network.state_dict())
    assert torch.equal(Enhancer(softer).enhance(image, output_type="pt"),
                       Enhancer(network, strength=0.5).enhance(image, output_type="pt"))
    assert torch.equal(Enhancer(softer).enhance(image, strength=1.0, output_type="pt"),
                       Enhancer(network).enhance(image, output_type="pt"))


# -- 24 MP: tiled output against the whole-image network, crop by crop ------------------------------
LARGE_HEIGHT, LARGE_WIDTH = 4000, 6000  # 24 MP, a full-size camera photo
LARGE_TILE = 1024  # balanced: 4 x 6 cores of 1000 x 1000
LARGE_STRIP_ROWS = 500  # rows encoded at a time for the whole-image pooled features
CROP_SIDE = 64


def _whole_image_features_in_strips(model, pixels: torch.Tensor, radius: int) -> torch.Tensor:
    """The encoder features of the whole image (1, hidden, H, W), computed by the eager model on row
    strips with `radius` rows of real context on each inner side (the encoder's receptive field)."""
    height = pixels.shape[-2]
    features = torch.empty((1, model.config.hidden_size, *pixels.shape[-2:]))
    for top in range(0, height, LARGE_STRIP_ROWS):
        bottom = min(top + LARGE_STRIP_ROWS, height)
        start, stop = max(top - radius, 0), min(bottom + radius, height)
        strip = model.encode(pixels[:, :, start:stop])
        features[:, :, top:bottom] = strip[:, :, top - start : top - start + bottom - top]
    return features


def _grown(box, radius: int, height: int, width: int) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """`box` (top, left, bottom, right) grown by `radius` and clipped to the image (where the padding
    then is the whole image's); the index of that region and of the box inside it."""
    top, left, bottom, right = box
    r0, c0, r1, c1 = max(top - radius, 0), max(left - radius, 0), min(bottom + radius, height), min(right + radius, width)
    region = (slice(None), slice(None), slice(r0, r1), slice(c0, c1))
    inside = (slice(None), slice(None), slice(top - r0, bottom - r0), slice(left - c0, right - c0))
    return region, inside


@pytest.mark.slow
def test_24_megapixel_tiled_output_equals_the_whole_image_on_crops(reference_model):
    """
    A 4000 x 6000 photo through the tiled engine (the path a full-size photo takes) against the
    whole-image network, computed without the tiling module: the eager encoder on row strips,
    PyTorch's adaptive pooling (float64) and bilinear upsampling of the whole feature map, then the
    eager fusion and decoder around each crop. Crops: the four corners (reflection padding), tile seams in
    both axes, and a plain interior block.
    """
    model = reference_model
    pixels = random_image(LARGE_HEIGHT, LARGE_WIDTH, seed=24)
    tiled = Enhancer(model, tile_size=LARGE_TILE).illumination(pixels)
    assert len(plan_tiles(LARGE_HEIGHT, LARGE_WIDTH, LARGE_TILE, HALO)) == 4 * 6  # really tiled

    with torch.inference_mode():
        features = _whole_image_features_in_strips(model, pixels, model.encoder_radius)
        side = CROP_SIDE
        seam_row = balanced_tile(LARGE_HEIGHT, LARGE_TILE)  # the first row seam
        seam_col = 3 * balanced_tile(LARGE_WIDTH, LARGE_TILE)  # the third column seam
        crops = [
            (0, 0, side, side),
            (0, LARGE_WIDTH - side, side, LARGE_WIDTH),
            (LARGE_HEIGHT - side, 0, LARGE_HEIGHT, side),
            (LARGE_HEIGHT - side, LARGE_WIDTH - side, LARGE_HEIGHT, LARGE_WIDTH),
            (seam_row - side // 2, seam_col - side // 2, seam_row + side // 2, seam_col + side // 2),
            (seam_row - side // 2, 0, seam_row + side // 2, side),  # a seam meeting the left border
            (2345, 4321, 2345 + side, 4321 + side),
        ]
        regions = [_grown(box, model.decoder_radius, LARGE_HEIGHT, LARGE_WIDTH) for box in crops]
        # the whole map average-pooled by PyTorch in float64 (in float32 its sums over 24 MP drift by
        # up to 8e-3: docs/engine.md), projected by the model and upsampled to the whole image
        pooled = [
            torch.cat([F.adaptive_avg_pool2d(features[:, c : c + 1].double(), bins) for c in range(features.shape[1])], 1)
            for bins in model.pyramid_pooling.bins
        ]
        context_crops = [[] for _ in crops]
        for grid in model.pyramid_pooling.context_from_pooled([grid.float() for grid in pooled]):
            full = F.interpolate(grid, size=(LARGE_HEIGHT, LARGE_WIDTH), mode="bilinear", align_corners=True)
            for maps, (region, _) in zip(context_crops, regions):
                maps.append(full[region].clone())
            del full
        for (top, left, bottom, right), (region, inside), maps in zip(crops, regions, context_crops):
            # the eager fusion and decoder around the crop, with the whole image's features and context
            whole = model.decode(model.pyramid_pooling.fuse(features[region], maps))[inside]
            crop = tiled[:, :, top:bottom, left:right]
            assert (crop - whole).abs().max().item() < ILLUMINATION_TOLERANCE, (top, left)
            crop_pixels = pixels[:, :, top:bottom, left:right]
            assert np.abs(to_levels(crop_pixels, crop) - to_levels(crop_pixels, whole)).max() <= ONE_LEVEL
