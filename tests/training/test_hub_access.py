"""`cliplit.training.hub`, in this process: offline (`HF_HUB_OFFLINE`) or with the Hub unreachable, a Hub id that is
not in the Hugging Face cache is refused at once, in one line naming the flag and what to do; a local folder
needs no Hub. (train/train.py's own one-line refusals run as processes in test_train_hardening.py.)"""

from __future__ import annotations

import pytest

from cliplit.errors import CLIPLITError
from cliplit.training.hub import prepare_hub_access

NOT_CACHED = {"--clip_model": ("nobody/no-such-clip", "pass --clip_model FOLDER")}


def test_an_uncached_hub_id_is_refused_at_once_offline_or_unreachable_and_a_folder_needs_no_hub(monkeypatch, tmp_path):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", constants.HF_HUB_OFFLINE)  # set for the process when refused: restored
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CLIPLITError) as refused:
        prepare_hub_access(NOT_CACHED)
    assert str(refused.value) == ("--clip_model nobody/no-such-clip: not in the Hugging Face cache and HF_HUB_OFFLINE is set; "
                                  "pass --clip_model FOLDER")
    monkeypatch.setenv("HF_HUB_OFFLINE", "")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(CLIPLITError, match=r"^--clip_model nobody/no-such-clip: .* the Hub cannot be reached; pass") as refused:
        prepare_hub_access(NOT_CACHED)
    assert "\n" not in str(refused.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "")
    assert prepare_hub_access({"--clip_model": (str(tmp_path), "pass --clip_model FOLDER")}) is None
