"""Ray's `EnhancedImageDatasink` resumes as `cliplit enhance` does (issue 28): an existing output is skipped only
when its record says it was made with the row's model and settings (`cliplit_settings`, set by `BatchEnhancer`),
and kept, counted and logged in one line otherwise. The actor's batch and the datasink's write run in this
process (no cluster)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pandas = pytest.importorskip("pandas")


def enhanced_block(model_dir, **settings):
    from cliplit.integrations.ray import BatchEnhancer

    column = np.empty(1, dtype=object)
    column[0] = np.full((20, 30, 3), 60, np.uint8)
    batch = BatchEnhancer(model=str(model_dir), **settings)({"image": column, "path": np.array(["s3://bucket/a.jpg"])})
    return pandas.DataFrame({key: list(value) for key, value in batch.items()})


def test_the_datasink_skips_only_outputs_made_with_the_same_settings(tmp_path, model_dir, caplog):
    from cliplit.integrations.ray import EnhancedImageDatasink

    sink = EnhancedImageDatasink(str(tmp_path / "out"))
    sink.on_write_start()
    first = enhanced_block(model_dir)
    assert sink.write([first], None) == {"written": 1, "skipped": 0, "kept": 0}
    written = (tmp_path / "out" / "a.png").read_bytes()
    assert (tmp_path / "out" / ".cliplit" / "a.png.json").is_file()
    assert sink.write([enhanced_block(model_dir)], None) == {"written": 0, "skipped": 1, "kept": 0}
    other = enhanced_block(model_dir, strength=0.5)
    with caplog.at_level(logging.WARNING, logger="cliplit.integrations.ray"):
        assert sink.write([other], None) == {"written": 0, "skipped": 0, "kept": 1}
    (line,) = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert "1 existing output(s) not made with this model and these settings (strength)" in line
    assert (tmp_path / "out" / "a.png").read_bytes() == written
    overwrite = EnhancedImageDatasink(str(tmp_path / "out"), overwrite=True)
    assert overwrite.write([other], None) == {"written": 1, "skipped": 0, "kept": 0}
    assert sink.write([other], None) == {"written": 0, "skipped": 1, "kept": 0}
