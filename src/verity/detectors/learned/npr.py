"""Low-level learned detector: a small CNN on the neighbouring-pixel residual (NPR)."""

from __future__ import annotations

from verity.core.registry import register_detector
from verity.detectors.learned._base import LearnedCropDetector


@register_detector
class LearnedNPRDetector(LearnedCropDetector):
    """Is the image AI-generated, judged from up-sampling traces (NPR, Tan et al. CVPR 2024).

    The residual x - up(down(x)) (nearest 2x) exposes the correlation that a generator's
    up-sampling layers impose on neighbouring pixels; a compact residual CNN trained from scratch
    by ``verity train detector`` (with JPEG, resizing, blur and noise augmentation, which the
    residual is otherwise fragile to) scores up to 9 native-resolution crops of 256 px and the
    top-3 logits are averaged. Never resize before it: resizing erases the trace. Weight 0.3 until
    fusion is fitted: on held-out data it ranks well (AUC 0.91) but is poorly calibrated (real photos
    score around 0.45-0.55).
    """

    name = "learned_npr"
    model = "learned_npr"
    what = "neighbouring-pixel-residual network"
    weight = 0.3
