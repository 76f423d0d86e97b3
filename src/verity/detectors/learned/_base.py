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

#: A generator lineage is named only when its probability and its measured share of right calls on
#: unseen families (``sibling_precision``) both reach this.
NAME_AT = 0.5


class LearnedCropDetector(Detector):
    """Scores crops with one shipped ONNX network and pools the top-k logits (native resolution, or
    the image resampled to the file's ``resize_short``; a ``family_logits`` output names a lineage).

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
        from verity.models.runtime import model_metadata, run_outputs
        from verity.ops.npr import crop_heatmap, rescale, score_image, sigmoid
        from verity.ops.regions import describe_box

        extra: dict[str, np.ndarray] = {}

        def logits_fn(batch: np.ndarray) -> np.ndarray:
            outs = run_outputs(self.model, batch)  # the first output is the logit
            if "family_logits" in outs:
                extra["family"] = np.asarray(outs["family_logits"], np.float64)
            return np.asarray(next(iter(outs.values())), np.float64).reshape(-1)

        meta = model_metadata(self.model)
        # a file trained on resampled copies says at which short side to score (its metadata or config)
        side = int(cfg.extra.get("resize_short") or meta.get("resize_short") or 0)
        if side:
            f = side / min(sample.height, sample.width)
            res = score_image(rescale(sample.pixels, f), logits_fn, cfg.crop, cfg.max_crops, cfg.top_k)
        else:
            f = 1.0
            res = score_image(sample.pixels, logits_fn, cfg.crop, cfg.max_crops, cfg.top_k, gray=sample.gray)
        logits, score = res["logits"], res["score"]
        cw, ch = res["boxes"][0][2] - res["boxes"][0][0], res["boxes"][0][3] - res["boxes"][0][1]
        # boxes in the image's own pixels
        boxes = [(min(sample.width, int(round(x0 / f))), min(sample.height, int(round(y0 / f))),
                  min(sample.width, int(round(x1 / f))), min(sample.height, int(round(y1 / f))))
                 for x0, y0, x1, y1 in res["boxes"]]
        probs = np.asarray(sigmoid(logits), np.float64).reshape(-1)
        order = np.argsort(-logits, kind="stable")
        k = max(1, min(cfg.top_k, len(boxes)))
        cell = max(8, int(np.ceil(max(sample.height, sample.width) / 64)))
        heat = crop_heatmap((sample.height, sample.width), boxes, probs, cell)
        top = [f"{describe_box(boxes[i])} ({probs[i]:.2f})" for i in order[:k]]
        n = len(boxes)
        where = f"of the image resampled to a {side} px short side" if side else "at native resolution"
        crops = f"{n} crop{'s' if n != 1 else ''} of {cw}x{ch} px {where} {'was' if n == 1 else 'were'} scored"
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
        family = generator_family(extra["family"][order[:k]], meta) if "family" in extra else None
        if family and score >= 0.5 and family["named"]:
            evidence.append(f"Its traces look like {family['description']} ({family['probability']:.0%} among the "
                            f"{len(meta['lineages'])} lineages the model knows; on generator families it never saw, "
                            f"{family['sibling_precision']:.0%} of its calls of this lineage were right).")
        n_fam = meta.get("n_families")
        if isinstance(n_fam, int):
            evidence.append(f"Trained on {n_fam} generator families (public sample images, Stable Diffusion 1.x, "
                            "autoencoder reconstructions of camera photos); generators unlike these may go unrecognised.")
        else:
            evidence.append("Trained on small data (Stable Diffusion 1.x and autoencoder reconstructions of camera "
                            "photos); generators unlike these may go unrecognised.")
        details = {
            "model": self.model,
            "crop": [int(cw), int(ch)],
            "boxes": [list(map(int, b)) for b in boxes],
            "crop_scores": [round(float(p), 4) for p in probs],
            "pooled_logit": round(float(res["logit"]), 4),
            "top_k": int(k),
            "resampled_short_side": side or None,
        }
        if family:
            details["generator_family"] = family
        return self.finding(score, evidence, heatmap=heat, details=details)


def generator_family(family_logits: np.ndarray, meta: dict) -> dict | None:
    """The generator lineage of the pooled crops: mean softmax of their family logits (k, K).

    Returns ``{"lineage", "probability", "description", "probabilities", "sibling_precision",
    "named"}``, or None when the model's metadata does not name ``K`` lineages. ``sibling_precision``
    is the share of right calls of that lineage on generator families the head never saw (the
    trainer's sibling test, None when unmeasured); ``named`` is True when both the probability and
    that share are at least :data:`NAME_AT`: only then is the lineage put in words.
    """
    names, phrases = meta.get("lineages"), meta.get("phrases")
    z = np.asarray(family_logits, np.float64)
    if z.ndim != 2 or not isinstance(names, list) or not isinstance(phrases, list) or len(names) != z.shape[1] \
            or len(phrases) != len(names) or z.shape[0] == 0:
        return None
    from verity.ops.npr import softmax

    p = softmax(z).mean(0)
    j = int(np.argmax(p))
    prec = (meta.get("sibling_precision") or {}).get(names[j])
    prec = float(prec) if isinstance(prec, (int, float)) else None
    return {"lineage": str(names[j]), "probability": round(float(p[j]), 4), "description": str(phrases[j]),
            "probabilities": {str(n): round(float(v), 4) for n, v in zip(names, p)},
            "sibling_precision": None if prec is None else round(prec, 4),
            "named": bool(p[j] >= NAME_AT and prec is not None and prec >= NAME_AT)}
