"""Known invisible watermarks of open-source diffusion pipelines (invisible-watermark 'dwtDct')."""

from __future__ import annotations

from verity.core.registry import Detector, register_detector
from verity.core.types import Finding, Sample


@register_detector
class InvisibleWatermark(Detector):
    """Looks for the fixed invisible watermarks that the public Stable Diffusion scripts embed with
    the ``invisible-watermark`` package's 'dwtDct' method: "StableDiffusionV1" (SD 1.x txt2img),
    "StableDiffusionV1-Inpainting", "SDV2" (SD 2.x) and the 48-bit SDXL pattern.

    Reads the method without the package (:func:`verity.provenance.watermark.detect_known`): one
    bit vote per 4x4 block of the U channel's Haar LL band; per message bit, the share of 1-votes;
    Welch's t-test between the shares of the message's 1-bits and 0-bits, Bonferroni over the four
    messages and both colour orders. A p-value below 1e-8 gives ``ai_generated`` 0.97: the pattern
    is a deliberate mark of a generator pipeline (marked images give 1e-16 or less; the unmarked
    training data: docs/benchmarks/watermark.md).
    Otherwise it abstains: most generated images carry no such mark (web services and diffusers'
    SD 1.x pipelines do not add it) and the mark does not survive JPEG re-compression, so its
    absence says nothing.

    Cost: 0.03 s CPU at 1 MP, 0.3 s at 12 MP; images over 16.8 MP (4096 x 4096) are not checked.

    Weight 2.0, as for generator metadata: a decoded generator mark is direct provenance, though
    anyone can embed the published pattern into any image.
    """

    name = "invisible_watermark"
    kind = "provenance"
    labels = ("ai_generated",)
    weight = 2.0

    def accepts(self, sample: Sample) -> bool:
        # generators write at most a few megapixels, and resampling destroys this block-grid mark
        return min(sample.height, sample.width) >= 64 and sample.height * sample.width <= 4096 * 4096

    def run(self, sample: Sample) -> Finding:
        from verity.provenance.watermark import KNOWN_P_THRESHOLD, detect_known

        k = detect_known(sample.pixels)
        details = {"best_mark": k.scores and min(k.scores, key=lambda s: s["log10_p"])["mark"],
                   "log10_p": round(k.log10_p, 2), "z": round(k.z, 2), "bit_accuracy": k.bit_accuracy,
                   "channel_order": k.channel_order}  # fmt: skip
        if k.name is None:
            return self.abstain(
                f"No known generator watermark (best match p = {10 ** k.log10_p:.2g}, needs < {KNOWN_P_THRESHOLD:g}).",
                **details,
            )
        s = (
            f"The image carries the invisible watermark that {k.name} embeds (invisible-watermark 'dwtDct'; "
            f"chance that an unmarked image matches this well: p = 1e{k.log10_p:.0f})."
        )
        return self.finding(0.97, [s], details=details)
