"""The metrics, computed with torchmetrics on the images a user would save.

Protocol (what papers that report CLIP-LIT on BAID use, and what makes numbers comparable):
full resolution, RGB, on the 8-bit outputs (16-bit when the data is 16-bit), `data_range` 255 (or
65535):

- `psnr`: 10 log10(MAX^2 / MSE), the MSE over all pixels and the three channels. Identical images
  have PSNR = +inf; they are reported as `inf` per image and left out of the mean (the summary says
  how many were left out).
- `ssim`: the Gaussian-window SSIM of Wang et al. (11 x 11 window, sigma 1.5, K1 0.01, K2 0.03,
  population covariances), per channel, averaged over the valid window positions and the channels:
  scikit-image's `structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255, channel_axis=-1)`.
- `lpips`: LPIPS (Zhang et al., 2018) with AlexNet features and the linear heads torchmetrics
  ships, on images scaled to [-1, 1] (torchmetrics' `normalize=True` does that from [0, 1]).
- `fid`: the Frechet Inception distance between the sets of outputs and targets (torchmetrics with
  torch-fidelity's Inception v3), on request only (it needs many images to mean anything).

LPIPS and FID need backbone weights that torchmetrics downloads once into the torch hub cache; offline,
`MetricUnavailable` says which file is missing and where to put it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..errors import CLIPLITError, first_line
from . import DEFAULT_METRICS, METRICS

HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "lpips": False, "fid": False}
SSIM_SIGMA = 1.5
SSIM_KERNEL = 11  # = 2 * int(3.5 * sigma + 0.5) + 1, scikit-image's Gaussian window for sigma 1.5
LPIPS_NET = "alex"
HUB_CHECKPOINTS = Path(torch.hub.get_dir()) / "checkpoints"
BACKBONE_FILES = {  # what torchmetrics downloads for each metric (name in the torch hub cache)
    "lpips": "alexnet-owt-7be5be79.pth",
    "fid": "weights-inception-2015-12-05-6726825d.pth",
}


class MetricUnavailable(CLIPLITError):
    """A metric cannot run here (a backbone cannot be downloaded, a package is missing)."""


class ImageTooSmall(CLIPLITError, ValueError):
    """An image is too small for a metric (SSIM's 11 x 11 window must fit inside it); that metric is skipped."""


def to_tensor(codes: np.ndarray) -> tuple[torch.Tensor, int]:
    """An 8- or 16-bit image array (H, W[, C]) -> ((1, 3, H, W) float64 codes, data range)."""
    data_range = 65535 if codes.dtype == np.uint16 else 255
    array = codes.astype(np.float64)
    if array.ndim == 2:
        array = array[:, :, None]
    array = array[:, :, :3] if array.shape[2] >= 3 else np.repeat(array[:, :, :1], 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).unsqueeze(0), data_range


def psnr(prediction: np.ndarray, target: np.ndarray) -> float:
    """PSNR in dB of two images of the same size and bit depth (inf when identical)."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    preds, data_range = to_tensor(prediction)
    targets, _ = to_tensor(target)
    if torch.equal(preds, targets):
        return math.inf
    return float(peak_signal_noise_ratio(preds, targets, data_range=float(data_range)))


def ssim(prediction: np.ndarray, target: np.ndarray) -> float:
    """SSIM of two images of the same size and bit depth (see the module docstring)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    preds, data_range = to_tensor(prediction)
    targets, _ = to_tensor(target)
    # float32: the Gaussian filtering then runs as a direct grouped convolution; in float64 PyTorch's CPU
    # path unfolds 11 x 11 patches (about 14 GB for a 3 MP photo). The difference to float64 is about 1e-5.
    preds, targets = preds.float(), targets.float()
    border = SSIM_KERNEL // 2
    if min(preds.shape[-2:]) <= 2 * border:
        raise ImageTooSmall(f"{preds.shape[-1]} x {preds.shape[-2]} pixels; SSIM needs more than {2 * border} x {2 * border}")
    _, full = structural_similarity_index_measure(preds, targets, gaussian_kernel=True, sigma=SSIM_SIGMA,
                                                  kernel_size=SSIM_KERNEL, data_range=float(data_range),
                                                  return_full_image=True)
    # torchmetrics averages over the whole image, its border computed on reflected padding; the
    # standard (and scikit-image) averages over the positions where the window lies inside the image
    return float(full[..., border:-border, border:-border].double().mean())


def _unavailable(metric: str, error: BaseException | None) -> MetricUnavailable:
    wanted = HUB_CHECKPOINTS / BACKBONE_FILES[metric]
    reason = f"could not be loaded ({first_line(error)})" if error is not None else "are not cached and HF_HUB_OFFLINE is set"
    return MetricUnavailable(f"{metric}: not computed: its backbone weights {reason}; "
                             f"run once online, or put {wanted.name} in {wanted.parent}")


def _require_backbone(metric: str) -> None:
    """Offline (HF_HUB_OFFLINE), a backbone that is not cached is not even looked for on the network."""
    from ..model.loading import offline

    if offline() and not (HUB_CHECKPOINTS / BACKBONE_FILES[metric]).is_file():
        raise _unavailable(metric, None)


class LPIPS:
    """LPIPS (AlexNet, torchmetrics' linear heads) of 8/16-bit images; built once, on `device`."""

    def __init__(self, device="cpu"):
        _require_backbone("lpips")
        try:
            from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

            self.metric = LearnedPerceptualImagePatchSimilarity(net_type=LPIPS_NET, normalize=True).to(device).eval()
        except ImportError as error:
            raise MetricUnavailable(f"lpips: not computed: {first_line(error)}") from None
        except Exception as error:  # noqa: BLE001 - a failed download surfaces as many types
            raise _unavailable("lpips", error) from None
        self.device = device

    @torch.no_grad()
    def __call__(self, prediction: np.ndarray, target: np.ndarray) -> float:
        preds, data_range = to_tensor(prediction)
        targets, _ = to_tensor(target)
        preds, targets = (t.float().div_(data_range).to(self.device) for t in (preds, targets))
        return float(self.metric(preds, targets))


class FID:
    """The Frechet Inception distance between two growing sets of images (`add`, then `compute`)."""

    def __init__(self, device="cpu"):
        _require_backbone("fid")
        try:
            from torchmetrics.image.fid import FrechetInceptionDistance

            self.metric = FrechetInceptionDistance(normalize=True).to(device)
        except ImportError as error:
            raise MetricUnavailable(f"fid: not computed: {first_line(error)} (pip install torch-fidelity)") from None
        except Exception as error:  # noqa: BLE001
            raise _unavailable("fid", error) from None
        self.device = device

    @torch.no_grad()
    def add(self, prediction: np.ndarray, target: np.ndarray) -> None:
        for image, real in ((prediction, False), (target, True)):
            pixels, data_range = to_tensor(image)
            self.metric.update(pixels.float().div_(data_range).to(self.device), real=real)

    def compute(self) -> float:
        return float(self.metric.compute())


__all__ = ["DEFAULT_METRICS", "FID", "HIGHER_IS_BETTER", "LPIPS", "METRICS", "MetricUnavailable", "psnr", "ssim"]
