"""Ray Data on a local cluster (2 CPUs): a folder of photos of mixed sizes and a file that is not an image,
enhanced by `BatchEnhancer` actors and written by `EnhancedImageDatasink`, gives the names and pixels of
`cliplit enhance`; the bad file is a logged skip or an error row, never a failed job."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from conftest import REPO_ROOT, smallest_reference_image
from helpers import run_cli_process
from integration_photos import BROKEN_NAME, CROPS, GRAY16_NAME, ROTATED_NAME, write_photo_folder

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.reference

ENV_PYTHONPATH = {"PYTHONPATH": str(REPO_ROOT)}


def read_png(path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


@pytest.fixture(scope="module")
def local_cluster():
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": ENV_PYTHONPATH}, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    return write_photo_folder(tmp_path_factory.mktemp("photos"), smallest_reference_image())


@pytest.fixture(scope="module")
def cli_outputs(photo_folder, converted_model_dir, tmp_path_factory):
    """
    What `cliplit enhance` writes for the folder (the bad file is reported, the others written), run on one
    core as the actors are (`num_cpus=1`: one thread). oneDNN's kernels give the same bits for the same
    thread count; across thread counts a pixel can round one level apart on some CPUs (seen on an AVX-512 Xeon).
    """
    output = tmp_path_factory.mktemp("cli")
    one_core = {min(os.sched_getaffinity(0))}
    result = run_cli_process("enhance", photo_folder, "-o", output, "--model", converted_model_dir, "-q",
                             preexec_fn=lambda: os.sched_setaffinity(0, one_core))
    assert BROKEN_NAME in result.stderr
    return output


@pytest.mark.slow
def test_folder_in_files_out_same_names_and_pixels_as_the_cli(local_cluster, photo_folder, converted_model_dir,
                                                              cli_outputs, tmp_path, caplog):
    from cliplit.integrations.ray import BatchEnhancer, EnhancedImageDatasink, output_name

    output = tmp_path / "ray"
    files = ray.data.read_binary_files(str(photo_folder), include_paths=True)
    settings = {"model": str(converted_model_dir), "mixed_bit_depths": True}  # JPEGs and a 16-bit PNG
    enhanced = files.map_batches(BatchEnhancer, fn_constructor_kwargs=settings, batch_size=3, concurrency=1, num_cpus=1)
    enhanced.write_datasink(EnhancedImageDatasink(str(output)))

    expected = sorted(p.name for p in cli_outputs.iterdir() if p.is_file())  # .cliplit/ holds the outputs' records
    assert sorted(p.name for p in output.iterdir() if p.is_file()) == expected
    assert set(expected) == {output_name(name) for name in [*CROPS, ROTATED_NAME, GRAY16_NAME]}  # not the broken file
    for name in expected:
        ours, theirs = read_png(output / name), read_png(cli_outputs / name)
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs), name
    assert read_png(output / GRAY16_NAME).dtype == np.uint16
    assert read_png(output / output_name(ROTATED_NAME)).shape[:2] == (80, 48)  # EXIF orientation applied


@pytest.mark.slow
def test_read_images_batches_of_mixed_sizes_and_error_rows(local_cluster, photo_folder, converted_model_dir, cli_outputs):
    from cliplit.integrations.ray import BatchEnhancer

    images = ray.data.read_images([str(photo_folder / name) for name in CROPS], include_paths=True, mode="RGB")
    rows = images.map_batches(BatchEnhancer, fn_constructor_kwargs={"model": str(converted_model_dir)},
                              batch_size=len(CROPS), concurrency=1, num_cpus=1).take_all()
    assert len(rows) == len(CROPS)
    for row in rows:
        name = row["path"].rsplit("/", 1)[-1].rsplit(".", 1)[0] + ".png"
        expected = cv2.cvtColor(read_png(cli_outputs / name), cv2.COLOR_BGR2RGB)
        assert row["image"].dtype == np.uint8 and np.array_equal(row["image"], expected), name

    files = ray.data.read_binary_files(str(photo_folder), include_paths=True)
    settings = {"model": str(converted_model_dir), "keep_errors": True, "mixed_bit_depths": True}
    rows = files.map_batches(BatchEnhancer, fn_constructor_kwargs=settings, batch_size=8, concurrency=1, num_cpus=1).take_all()
    errors = {row["path"].rsplit("/", 1)[-1]: row["error"] for row in rows}
    assert errors[BROKEN_NAME].startswith(str(photo_folder / BROKEN_NAME)) and "\n" not in errors[BROKEN_NAME]
    assert [name for name, message in errors.items() if message] == [BROKEN_NAME]
    depths = {row["path"].rsplit("/", 1)[-1]: (row["bit_depth"], row["image"].dtype) for row in rows}
    assert depths[GRAY16_NAME] == (16, np.uint16) and depths["beach.jpg"] == (8, np.uint16)


def test_batch_enhancer_called_directly(photo_folder, converted_model_dir):
    """What an actor does with one batch, without a cluster: ragged and uint16 columns, error rows, the device."""
    import torch

    from cliplit.errors import SettingsError
    from cliplit.integrations.ray import BatchEnhancer

    enhancer = BatchEnhancer(model=str(converted_model_dir), keep_errors=True)
    assert enhancer.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    small, wide = np.full((20, 30, 3), 40, np.uint8), np.full((16, 50, 3), 90, np.uint8)
    gray16 = np.full((24, 18), 9000, np.uint16)
    column = np.empty(4, dtype=object)
    for index, image in enumerate([small, wide, gray16, np.full((1, 1, 3), np.nan, np.float32)]):
        column[index] = image
    out = enhancer({"image": column, "path": np.array(["a.jpg", "b.jpg", "c.png", "d.tif"]), "label": np.arange(4)})
    assert list(out["label"]) == [0, 1, 2, 3] and list(out["path"]) == ["a.jpg", "b.jpg", "c.png", "d.tif"]
    assert [image.shape for image in out["image"][:3]] == [(20, 30, 3), (16, 50, 3), (24, 18, 1)]
    assert out["image"][2].dtype == np.uint16 and out["image"][0].dtype == np.uint8
    assert out["bit_depth"].tolist() == [8, 8, 16, 8]
    assert out["error"][:3].tolist() == ["", "", ""] and out["error"][3].startswith("d.tif: enhancement failed:")
    dropped = BatchEnhancer(model=str(converted_model_dir))({"image": column, "path": np.array(["a", "b", "c", "d"])})
    assert list(dropped["path"]) == ["a", "b", "c"] and "error" not in dropped
    mixed = BatchEnhancer(model=str(converted_model_dir), mixed_bit_depths=True)({"image": column[:3]})
    assert all(image.dtype == np.uint16 for image in mixed["image"])
    assert np.array_equal(mixed["image"][0], out["image"][0]) and np.array_equal(mixed["image"][2], out["image"][2])
    with pytest.raises(SettingsError, match="read_images"):
        enhancer({"pixels": column})
