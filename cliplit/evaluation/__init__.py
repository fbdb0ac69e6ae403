"""Evaluation: the papers' full-reference metrics (PSNR, SSIM, LPIPS, FID) of enhanced images against
targets, for models run by the engine and for outputs of other methods, side by side."""

METRICS = ("psnr", "ssim", "lpips", "fid")
DEFAULT_METRICS = ("psnr", "ssim", "lpips")  # fid on request: it needs many images to mean anything
