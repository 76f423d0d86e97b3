"""Shared logic of the learned AI-image detectors (no detector is registered here)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from verity.core.registry import Detector
from verity.core.types import Finding, Sample

#: Smallest image side the learned branches score. The networks were trained on 256 px crops (224 px
#: for the semantic head) and never saw a whole small image: on 64 px thumbnails they answer with
#: confident, meaningless scores (lab GAN portraits at 64 px came out as near-certainly real), so
#: below half the training crop they abstain.
MIN_SIDE = 128


class LearnedCropDetector(Detector):
    """Scores native-resolution crops with one shipped ONNX network and pools the top-k logits.

    Subclasses set ``name``, ``model`` (a :mod:`verity.models` config name) and ``what`` (a phrase
    for the evidence).
    """

    kind = "learned"
    labels = ("ai_generated",)
    requires = ("onnxruntime",)
    model: ClassVar[str] = ""
    what: ClassVar[str] = ""

    def run(self, sample: Sample) -> Finding:
        from verity.models import get_config, verify_weights

        cfg = get_config(self.model)
        reason = verify_weights(self.model)
        if reason:
            return self.abstain(reason)
        h, w = sample.height, sample.width
        if min(h, w) < MIN_SIDE:
            return self.abstain(f"the image ({w}x{h} px) is too small for the learned detector (needs {MIN_SIDE} px a side; "
                                "its network was trained on larger crops)")
        try:
            return self._score(sample, cfg)
        except Exception as e:  # noqa: BLE001 - a detector must never raise on a loaded sample
            return self.abstain(f"the learned detector failed on this image ({type(e).__name__}: {e})")

    def _score(self, sample: Sample, cfg) -> Finding:
        from verity.models.runtime import run_logits
        from verity.ops.npr import crop_heatmap, score_image, sigmoid
        from verity.ops.regions import describe_box

        res = score_image(sample.pixels, lambda b: run_logits(self.model, b), cfg.crop, cfg.max_crops, cfg.top_k,
                          gray=sample.gray)
        boxes, logits, score = res["boxes"], res["logits"], res["score"]
        probs = np.asarray(sigmoid(logits), np.float64).reshape(-1)
        order = np.argsort(-logits, kind="stable")
        k = max(1, min(cfg.top_k, len(boxes)))
        cw, ch = boxes[0][2] - boxes[0][0], boxes[0][3] - boxes[0][1]
        cell = max(8, int(np.ceil(max(sample.height, sample.width) / 64)))
        heat = crop_heatmap((sample.height, sample.width), boxes, probs, cell)
        top = [f"{describe_box(boxes[i])} ({probs[i]:.2f})" for i in order[:k]]
        n = len(boxes)
        crops = f"{n} crop{'s' if n != 1 else ''} of {cw}x{ch} px at native resolution {'was' if n == 1 else 'were'} scored"
        if score >= 0.5:
            head = (f"The {self.what} rates the image {score:.2f} likely AI-generated: {crops}; the highest-scoring "
                    f"{'crop' if k == 1 else f'{k} crops'} ({'; '.join(top)}) drove the score.")
        else:
            head = (f"The {self.what} finds no generation trace ({score:.2f}): {crops}, the highest "
                    f"{probs[order[0]]:.2f} at {describe_box(boxes[order[0]])}.")
        spread = float(probs.max() - probs.min()) if len(probs) > 1 else 0.0
        evidence = [head]
        if len(probs) > 1 and spread >= 0.5:
            evidence.append(f"Crop scores disagree (from {probs.min():.2f} to {probs.max():.2f}); only part of the "
                            "image may be generated, or the low-texture crops carry little trace.")
        evidence.append("Trained on small data (Stable Diffusion 1.x and autoencoder reconstructions of camera "
                        "photos); generators unlike these may go unrecognised.")
        return self.finding(
            score,
            evidence,
            heatmap=heat,
            details={
                "model": self.model,
                "crop": [int(cw), int(ch)],
                "boxes": [list(map(int, b)) for b in boxes],
                "crop_scores": [round(float(p), 4) for p in probs],
                "pooled_logit": round(float(res["logit"]), 4),
                "top_k": int(k),
            },
        )
