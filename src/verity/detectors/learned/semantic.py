"""Semantic learned detector: frozen ImageNet MobileNetV2 + EfficientNet-Lite0 features + a trained linear head."""

from __future__ import annotations

from verity.core.registry import register_detector
from verity.detectors.learned._base import LearnedCropDetector


@register_detector
class LearnedSemanticDetector(LearnedCropDetector):
    """Is the image AI-generated, judged from a pretrained feature space (the UnivFD lesson).

    MobileNetV2 and EfficientNet-Lite0 (ImageNet weights, frozen) are read at five and seven depths
    (strides 4 to 32), each pooled over space; a logistic head on the concatenation, trained by
    ``verity train detector`` on augmented, metadata-free crops of real photos, Stable Diffusion
    images and autoencoder reconstructions, maps them to a logit. Up to 6 native-resolution crops of
    224 px (the most textured on a grid) are scored and the top-2 logits averaged. Hand-set fusion
    weight 0.5 (small training data); the shipped fitted fusion sets its own.
    """

    name = "learned_semantic"
    model = "learned_semantic"
    what = "pretrained-feature classifier (MobileNetV2 + EfficientNet-Lite0 + linear head)"
    weight = 0.5
