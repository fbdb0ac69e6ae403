"""Numbers that break a run (issue 28): `--denoise` is bounded at parse time by `MAX_DENOISE_LEVEL`, so 1e300 (an
OverflowError naming no file) and 1e150 (numpy's RuntimeWarning) are one usage line before anything is loaded,
and the largest level allowed runs without a warning. In this process."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import run_cli
from PIL import Image

from cliplit.errors import SettingsError


@pytest.mark.parametrize("level", ["1e300", "1e150", "128"])
def test_a_noise_level_over_the_maximum_is_refused_at_parse_time(tmp_path, level):
    from cliplit.engine.settings import check_denoise

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "a.png")
    result = run_cli("enhance", tmp_path / "a.png", "-o", tmp_path / "out", "--model", tmp_path / "no-model",
                     "--denoise", level)  # refused before the (missing) model is looked at
    (line,) = [line for line in result.stderr.splitlines() if "error:" in line]
    assert result.returncode == 2 and "--denoise" in line and "from 0 to 127.5" in line and level in line
    assert not (tmp_path / "out").exists()
    with pytest.raises(SettingsError, match="from 0 to 127.5"):
        check_denoise(float(level))  # the Python API checks the same bound


def test_the_largest_noise_level_runs_without_a_warning(tmp_path, model_dir):
    from cliplit.engine.settings import MAX_DENOISE_LEVEL, check_denoise

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 60, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "dark.png")
    assert check_denoise(str(MAX_DENOISE_LEVEL)) == MAX_DENOISE_LEVEL
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_cli("enhance", tmp_path / "dark.png", "-o", tmp_path / "out", "--model", model_dir,
                         "--denoise", str(MAX_DENOISE_LEVEL), "-q")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]
