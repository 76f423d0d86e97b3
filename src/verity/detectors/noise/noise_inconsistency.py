"""Local noise inconsistency detector."""

from __future__ import annotations

import numpy as np

from verity.core.registry import Detector, register_detector
from verity.core.types import Finding, Sample


def noise_score(z: float, frac: float) -> float:
    """Map the strength of the strongest anomalous region to a score in [0.5, 0.9].

    Parameters
    ----------
    z : float
        ``|log(sigma / expected)|`` of the region over the image's robust spread of that quantity.
    frac : float
        Share of the judged blocks that the region covers.
    """
    conf = float(np.clip((z - 4.0) / 6.0, 0.0, 1.0)) * float(np.clip(frac / 0.04, 0.25, 1.0))
    return 0.5 + 0.4 * conf


@register_detector
class NoiseInconsistency(Detector):
    """Local noise inconsistency: a region whose sensor-noise level differs from the rest.

    Method (:mod:`verity.ops.noise`): the noise standard deviation of every 32x32 block is
    estimated from the finest diagonal Haar sub-band (trimmed RMS of the block's flattest
    coefficients, after Donoho's ``median(|HH|)/0.6745``), clipped and strongly textured blocks are
    set aside, and each block is compared with blocks of similar brightness (camera noise grows with
    brightness). The largest connected group of blocks that deviates by more than 1.8x and by more
    than three times the image's own spread is reported. Large images are analysed on one 2x2 pixel
    cell in every 2x2 (over 2.5 MP) or 3x3 (over 10 MP) group of cells, which keeps the noise
    statistics and cuts the work.

    Score: 0.5 to 0.9 as the region gets more extreme relative to the image's spread and larger;
    0.45 when the noise is consistent. Weight 0.5: texture, focus blur, JPEG and denoising all
    change the local estimate, so real camera photos show such regions too (see
    docs/classical.md for the measured rate); the heatmap is the most useful output.
    """

    name = "noise_inconsistency"
    kind = "noise"
    labels = ("edited",)
    weight = 0.5

    block = 32

    def run(self, sample: Sample) -> Finding:
        from verity.ops.noise import luma, noise_inconsistency, subsample_cells
        from verity.ops.regions import describe_box

        h, w = sample.height, sample.width
        if min(h, w) < 4 * self.block:
            return self.abstain(f"image is too small for a noise map ({w}x{h}, needs {4 * self.block} px)")
        mp = h * w / 1e6
        stride = 1 if mp <= 2.5 else (2 if mp <= 10 else 3)
        gray = luma(subsample_cells(sample.pixels, stride))
        res = noise_inconsistency(gray, block=self.block)
        nm = res.noise
        nvalid = int(nm.valid.sum())
        bpx = self.block * stride  # block side in original pixels
        heat = np.clip(np.abs(res.deviation) / np.log(4.0), 0, 1).astype(np.float32)
        details = {
            "block_px": bpx,
            "blocks_judged": nvalid,
            "blocks_total": int(nm.valid.size),
            "typical_sigma": round(res.typical_sigma, 3),
            "spread_log": round(res.spread, 3),
            "cell_stride": stride,
        }
        if nvalid < 8:
            return self.abstain(
                "too few blocks with measurable noise (the image is flat, clipped, heavily compressed "
                "or strongly textured)",
                **details,
            )
        nreg = int(res.region.sum())
        if nreg < max(4, int(0.01 * nvalid)):
            return self.finding(
                0.45,
                [
                    f"The noise level is consistent across the image (typical sigma {res.typical_sigma:.2f} "
                    f"gray levels over {nvalid} blocks of {bpx}x{bpx} px)."
                ],
                details=details,
                heatmap=heat,
            )
        spread = max(res.spread, 0.1)
        z = abs(np.log(res.ratio)) / spread
        frac = nreg / nvalid
        score = noise_score(z, frac)
        ys, xs = np.nonzero(res.region)
        box = (
            int(xs.min() * bpx),
            int(ys.min() * bpx),
            int(min(w, (xs.max() + 1) * bpx)),
            int(min(h, (ys.max() + 1) * bpx)),
        )
        sig_in = float(np.median(nm.sigma[res.region]))
        sig_exp = sig_in / res.ratio
        word = "higher" if res.ratio > 1 else "lower"
        times = res.ratio if res.ratio > 1 else 1.0 / res.ratio
        details.update(
            {
                "region_box": list(box),
                "region_blocks": nreg,
                "sigma_ratio": round(res.ratio, 3),
                "region_sigma": round(sig_in, 3),
                "expected_sigma": round(sig_exp, 3),
                "z": round(float(z), 2),
            }
        )
        ev = (
            f"The region at {describe_box(box)} has {times:.1f} times {word} noise than the rest of the "
            f"image at similar brightness (sigma {sig_in:.2f} vs {sig_exp:.2f} gray levels, "
            f"{nreg} of {nvalid} blocks; {z:.1f} times the image's normal variation)."
        )
        if score < 0.6:
            ev += " Texture, focus and compression cause differences of this size in real photos too."
        return self.finding(score, [ev], details=details, heatmap=heat)
