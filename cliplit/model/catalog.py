"""The published checkpoints of this architecture, each one short name away (no torch, no transformers).

Every entry is an authors' `.pth` file in their public repository, with its sha256; `cliplit.model.loading`
downloads it once, checks it, converts it to a `from_pretrained` folder and caches it.
"""

from __future__ import annotations

from dataclasses import dataclass

CLIPLIT_REPOSITORY = "https://github.com/ZhexinLiang/CLIP-LIT"
RAVE_REPOSITORY = "https://github.com/Atmyre/RAVE"
CLIPLIT_PAPER = "Liang et al., Iterative Prompt Learning for Unsupervised Backlit Image Enhancement, ICCV 2023"
RAVE_PAPER = "Gaintseva et al., RAVE: Residual Vector Embedding for CLIP-Guided Backlit Image Enhancement, ECCV 2024"
PAIRED = "paired data (the well-lit images are the ground truth of the backlit ones)"
UNPAIRED = "unpaired data"


@dataclass(frozen=True)
class PublishedModel:
    """One published checkpoint: its short name, where it is published, its checksum and what it learned from."""

    name: str
    repository: str
    path: str  # the file's path inside `repository`
    sha256: str
    guidance: str
    data: str
    paper: str

    @property
    def url(self) -> str:
        return f"{self.repository}/raw/main/{self.path}"

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def trained_with(self) -> str:
        return f"{self.guidance}, {self.data}"


def _rave(name: str, sha256: str, guidance: str, data: str) -> PublishedModel:
    filename = name.replace("-", "_") + ".pth"
    return PublishedModel(name, RAVE_REPOSITORY, f"pretrained_models/{filename}", sha256, guidance, data, RAVE_PAPER)


PROMPTS = "CLIP-LIT guidance (learned prompt pair)"
LATENT = "CLIP-LIT-Latent guidance (learned pair of CLIP embeddings)"
RESIDUAL = "RAVE guidance (fixed residual vector)"
SHIFTED = "RAVE guidance (residual vector shifted away from 15 text-token directions)"

PUBLISHED_MODELS: dict[str, PublishedModel] = {
    model.name: model
    for model in (
        PublishedModel(
            "clip-lit", CLIPLIT_REPOSITORY, "pretrained_models/enhancement_model.pth",
            "67aa1bdbac345842670e494b02953f299e5088bcb3f98a18bd60b06fef48b5c9",
            PROMPTS, "unpaired backlit and well-lit images (the paper's model)", CLIPLIT_PAPER,
        ),
        _rave("rave-unpaired", "21fb43004af7de2e1782b5799fbaa91dc62ca2730134229323bceab53370742c", RESIDUAL, UNPAIRED),
        _rave("rave-paired", "3d4e27eecbde9b55d2ef96afadc8cf4c2d0927fb8780ce1df6508d01a7ef811f", RESIDUAL, PAIRED),
        _rave("rave-unpaired-shifted", "5bcf3feff7dcc4891be878721c2defba0305e343c6b3821f9e88a9950c06ae5e", SHIFTED, UNPAIRED),
        _rave("clip-lit-paired", "5c3e14b3674d516190e77e54614476fe19ac91b9d8419c0c25533e573ff65d2d", PROMPTS, PAIRED),
        _rave("clip-lit-unpaired", "7b16e3815c1380138ada75ca5000f818db4462c27f4522a1de46023d96c09d0d", PROMPTS, UNPAIRED),
        _rave("clip-lit-latent-paired", "8bc9d8882837dbee3d266f4407478f63220174cd5838fbcadf2f4b2c070146ec", LATENT, PAIRED),
        _rave("clip-lit-latent-unpaired", "931966b5cbc3320d90a62c9ee7c820e0d291d7abfb85989b8296458e2354f94e", LATENT, UNPAIRED),
    )
}
DEFAULT_MODEL_NAME = "clip-lit"


__all__ = ["DEFAULT_MODEL_NAME", "PUBLISHED_MODELS", "PublishedModel"]
