"""Named weight configurations of verity's learned models (timm-style registry, import-light).

Every shipped network is an ONNX file under ``verity/models/weights/`` listed here with the SHA-256 of
the file, its input recipe and the command that reproduces it. This module imports neither torch nor
onnxruntime: :func:`weight_path` and :func:`verify_weights` only touch the file system, and the
inference sessions live in :mod:`verity.models.runtime`.

Examples
--------
>>> from verity.models import list_models, get_config
>>> "learned_semantic" in list_models()
True
>>> get_config("learned_npr").crop
256
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

#: Folder of the shipped weights (inside the installed package).
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: How the shipped weights are reproduced (each config names its ``command``).
TRAIN_COMMAND = "verity train detector --data ../shared/data --out src/verity/models/weights/ --seed 0"


@dataclass(frozen=True)
class ModelConfig:
    """One named network and how to feed it.

    Attributes
    ----------
    name : str
        Registry name (also the detector that uses it).
    file : str
        ONNX file name under :data:`WEIGHTS_DIR`.
    sha256 : str
        Pinned SHA-256 of ``file``; an empty string means "not pinned yet" (checked = skipped).
    crop : int
        Side of the native-resolution crops the network scores (pixels).
    max_crops : int
        Most crops scored per image.
    top_k : int
        Crop logits pooled by the mean of the ``top_k`` largest.
    description : str
        One line for ``verity detectors`` and the docs.
    input : str
        What the ONNX input named ``image`` is: ``(N, 3, H, W) float32 RGB in [0, 1]``; the network
        normalises internally and returns ``logit`` of shape (N,) as its first output (a file of
        ``verity train semantic-head`` adds ``family_logits``).
    command : str
        The command that rebuilds the file.
    extra : dict
        ``resize_short``: score the image resampled to this short side (px) instead of native pixels
        (for a head trained on resampled copies, as ``verity train semantic-head`` trains).
    """

    name: str
    file: str
    sha256: str
    crop: int
    max_crops: int
    top_k: int
    description: str
    input: str = "image: (N, 3, H, W) float32 RGB in [0, 1]; output logit: (N,)"
    extra: dict = field(default_factory=dict)
    command: str = TRAIN_COMMAND


# The sha256 pins below are rewritten by ``verity train detector`` (and by ``verity train
# semantic-head`` for learned_semantic when it writes into the package).
_CONFIGS: dict[str, ModelConfig] = {
    "learned_semantic": ModelConfig(
        name="learned_semantic",
        file="learned_semantic.onnx",
        sha256="bd697e0f84edfb053819f2b6ab14236b93596622d4a27542ce20c5c6cd46e53c",
        crop=224,
        max_crops=6,
        top_k=2,
        description="frozen ImageNet MobileNetV2 + EfficientNet-Lite0 (multi-level pooled features) + a trained linear head",
    ),
    "learned_npr": ModelConfig(
        name="learned_npr",
        file="learned_npr.onnx",
        sha256="97c2a9e5f7e2c8a314e15a371b3be0111edf18d28f82c5094481c73dce0f3aef",
        crop=256,
        max_crops=9,
        top_k=3,
        description="small CNN trained from scratch on the neighbouring-pixel residual x - up(down(x))",
    ),
}


def list_models() -> list[str]:
    """Names of the configured networks, sorted."""
    return sorted(_CONFIGS)


def get_config(name: str) -> ModelConfig:
    """The :class:`ModelConfig` registered as ``name`` (KeyError naming the known ones)."""
    try:
        return _CONFIGS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(list_models())}") from None


def weight_path(name: str) -> Path:
    """Where the ONNX file of ``name`` lives (it may not exist)."""
    return WEIGHTS_DIR / get_config(name).file


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@lru_cache(maxsize=None)
def verify_weights(name: str) -> str | None:
    """Check the shipped file of ``name`` once per process.

    Returns
    -------
    str or None
        ``None`` when the file exists and matches its pin (or no pin is set), else a one-line reason
        suitable for an abstaining finding.
    """
    cfg = get_config(name)
    p = WEIGHTS_DIR / cfg.file
    if not p.is_file():
        return f"weights {cfg.file} are not installed (reproduce them with: {cfg.command})"
    if cfg.sha256 and file_sha256(p) != cfg.sha256:
        return f"weights {cfg.file} do not match their pinned SHA-256 (corrupt or replaced file)"
    return None
