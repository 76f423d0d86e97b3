"""Error level analysis (ELA) detector."""

from __future__ import annotations

from typing import Any

import numpy as np

from verity.core.registry import Detector, register_detector
from verity.core.types import Finding, Sample

#: Re-save quality.
ELA_QUALITY = 90
#: Tile side (pixels) of the consistency statistic.
TILE = 32
#: Longest side of the returned heatmap.
HEAT_MAX_SIDE = 1024


def ela_score(z: float, n_tiles: int) -> float:
    """Score from the strongest region's robust z-score of the ELA-to-texture ratio: 0.48 when
    nothing stands out, rising to at most 0.6 (ELA alone cannot tell a pasted region from a
    smooth or saturated one)."""
    conf = float(np.clip((z - 5.0) / 10.0, 0.0, 1.0)) * min(1.0, n_tiles / 6.0)
    return 0.48 + 0.12 * conf


@register_detector
class ErrorLevelAnalysis(Detector):
    """Error level analysis: re-save the image as JPEG at quality 90 and show where it changes.

    Method (:func:`verity.ops.jpeg.error_level`): the luma is re-encoded with libjpeg at quality
    90 and the per-pixel absolute difference is the heatmap (smoothed over 8x8 px and scaled by
    the 99th percentile). Parts saved fewer times, or at a different quality, than the rest
    change more (or less) than the rest. For the score, each 32x32 tile's mean error level is
    divided by its texture (mean absolute gradient + 1), and the most unusual connected group of
    tiles (robust z-score of the log ratio) is reported.

    Score: 0.48 to 0.6 at most. Edges, texture, noise and saturated areas light up ELA in every
    photo; it is mainly a heatmap for a person to look at, next to the double-JPEG and ghost maps.
    Weight 0.3 for the same reason.
    """

    name = "jpeg_ela"
    kind = "compression"
    labels = ("edited",)
    weight = 0.3

    def run(self, sample: Sample) -> Finding:
        import cv2

        from verity.ops.jpeg import error_level, tile_means
        from verity.ops.regions import describe_box

        h, w = sample.height, sample.width
        if min(h, w) < 2 * TILE:
            return self.abstain(f"image is too small for error level analysis ({w}x{h})")
        y = cv2.cvtColor(np.ascontiguousarray(sample.pixels), cv2.COLOR_RGB2GRAY)
        ela = error_level(y, ELA_QUALITY)
        nty, ntx = h // TILE, w // TILE
        e = tile_means(ela, TILE)
        details: dict[str, Any] = {"quality": ELA_QUALITY, "mean_error": round(float(e.mean()), 3)}
        # heatmap: smoothed, normalised, at most HEAT_MAX_SIDE px
        scale = min(1.0, HEAT_MAX_SIDE / max(h, w))
        if scale < 1.0:
            # 16-bit keeps the fractions of the area average (uint8 would round them away)
            e16 = cv2.multiply(ela, 64, dtype=cv2.CV_16U)
            sm = cv2.resize(e16, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
            sm = cv2.blur(sm.astype(np.float32) / 64.0, (max(2, round(8 * scale)),) * 2)
        else:
            sm = cv2.blur(ela.astype(np.float32), (8, 8))
        p99 = float(np.percentile(sm, 99))
        heat = np.clip(sm / max(p99, 1e-3), 0, 1).astype(np.float32)
        # tile statistic: error level over texture (mean absolute horizontal + vertical step)
        gx = np.zeros_like(y)
        gy = np.zeros_like(y)
        gx[:, 1:] = cv2.absdiff(y[:, 1:], y[:, :-1])
        gy[1:, :] = cv2.absdiff(y[1:, :], y[:-1, :])
        g = tile_means(gx, TILE) + tile_means(gy, TILE)
        lr = np.log((e + 0.05) / (g + 1.0))
        med = float(np.median(lr))
        mad = float(np.median(np.abs(lr - med))) * 1.4826 + 1e-3
        z = np.abs(lr - med) / mad
        details["z_max"] = round(float(z.max(initial=0.0)), 2)
        mask = z >= 5.0
        if not mask.any() or nty * ntx < 8:
            return self.finding(
                0.48,
                [f"Error levels (re-saved at quality {ELA_QUALITY}) follow the image's texture everywhere; no region stands out."],
                heatmap=heat,
                details=details,
            )
        n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        best = max(range(1, n), key=lambda i: ela_score(float(z[lab == i].max()), int(stats[i, 4])))
        sel = lab == best
        ys, xs = np.nonzero(sel)
        box = (int(xs.min() * TILE), int(ys.min() * TILE), int(min(w, (xs.max() + 1) * TILE)), int(min(h, (ys.max() + 1) * TILE)))
        zpk = float(z[sel].max())
        word = "higher" if float(lr[sel].mean()) > med else "lower"
        score = ela_score(zpk, int(sel.sum()))
        details.update({"region_box": list(box), "region_tiles": int(sel.sum())})
        ev = (
            f"The region at {describe_box(box)} has {word} error levels than its texture predicts when "
            f"re-saved at quality {ELA_QUALITY} ({zpk:.1f} times the image's usual spread). ELA alone is "
            f"weak: edges, smooth and saturated areas also stand out."
        )
        return self.finding(score, [ev], heatmap=heat, details=details)
