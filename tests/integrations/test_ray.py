"""Ray Data on a local cluster (2 CPUs): a folder of photos of mixed sizes and a file that is not an image,
enhanced by `BatchEnhancer` actors and written by `EnhancedImageDatasink`, gives the names and pixels of
`cliplit enhance`; the bad file is a logged skip or an error row, never a failed job."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import REPO_ROOT, smallest_reference_image
from photos import BROKEN_NAME, CROPS, write_photo_folder

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
    """What `cliplit enhance` writes for the folder (the bad file is reported, the others written)."""
    output = tmp_path_factory.mktemp("cli")
    result = subprocess.run([sys.executable, "-m", "cliplit", "enhance", str(photo_folder), "-o", str(output),
                             "--model", str(converted_model_dir), "-q"], capture_output=True, text=True,
                            env={**__import__("os").environ, **ENV_PYTHONPATH})
    assert BROKEN_NAME in result.stderr
    return output


def test_folder_in_files_out_same_names_and_pixels_as_the_cli(local_cluster, photo_folder, converted_model_dir,
                                                              cli_outputs, tmp_path, caplog):
    from cliplit.integrations.ray import BatchEnhancer, EnhancedImageDatasink

    output = tmp_path / "ray"
    files = ray.data.read_binary_files(str(photo_folder), include_paths=True)
    enhanced = files.map_batches(BatchEnhancer, fn_constructor_kwargs={"model": str(converted_model_dir)},
                                 batch_size=3, concurrency=1, num_cpus=1)
    enhanced.write_datasink(EnhancedImageDatasink(str(output)))

    expected = sorted(p.name for p in cli_outputs.iterdir())
    assert sorted(p.name for p in output.iterdir()) == expected
    assert len(expected) == len(CROPS) + 1  # the crops and the 16-bit PNG; not the broken file
    for name in expected:
        ours, theirs = read_png(output / name), read_png(cli_outputs / name)
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs), name
    assert read_png(output / "night16.png").dtype == np.uint16


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
    rows = files.map_batches(BatchEnhancer, fn_constructor_kwargs={"model": str(converted_model_dir), "keep_errors": True},
                             batch_size=8, concurrency=1, num_cpus=1).take_all()
    errors = {row["path"].rsplit("/", 1)[-1]: row["error"] for row in rows}
    assert errors[BROKEN_NAME].startswith(str(photo_folder / BROKEN_NAME)) and "\n" not in errors[BROKEN_NAME]
    assert [name for name, message in errors.items() if message] == [BROKEN_NAME]
