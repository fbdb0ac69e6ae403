"""Exact fp32 on CUDA runs its convolutions in full fp32 (TF32 off while it runs, the process's setting restored)."""

from __future__ import annotations

import threading

import torch

from cliplit.engine.runtime import FULL_PRECISION_CONVOLUTIONS, FullPrecisionConvolutions, Runtime
from cliplit.model.network import CLIPLITNetwork


def test_tf32_is_off_while_any_user_runs_and_the_process_setting_comes_back():
    saved = torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = True
        guard = FullPrecisionConvolutions()
        inside, release = threading.Event(), threading.Event()
        seen = []

        def long_user():
            with guard:
                inside.set()
                release.wait(10)
                seen.append(torch.backends.cudnn.allow_tf32)

        worker = threading.Thread(target=long_user)
        worker.start()
        inside.wait(10)
        with guard:  # a second, shorter user leaves first: the flag must stay off for the first
            assert torch.backends.cudnn.allow_tf32 is False
        assert torch.backends.cudnn.allow_tf32 is False
        release.set()
        worker.join()
        assert seen == [False]
        assert torch.backends.cudnn.allow_tf32 is True  # the last user restored the process's own setting
    finally:
        torch.backends.cudnn.allow_tf32 = saved


def test_only_exact_fp32_on_cuda_touches_the_flag():
    network = CLIPLITNetwork()
    for dtype in ("fp32", "bf16"):
        assert Runtime(network, device="cpu", dtype=dtype).numerics() is not FULL_PRECISION_CONVOLUTIONS
    runtime = Runtime(network, device="cpu")
    runtime.device = torch.device("cuda")  # what the choice looks at (no CUDA needed to check it)
    assert runtime.numerics() is FULL_PRECISION_CONVOLUTIONS
    runtime.dtype = torch.float16
    assert runtime.numerics() is not FULL_PRECISION_CONVOLUTIONS
