"""JPEG ghost detector (Farid 2009)."""

from __future__ import annotations

from typing import Any

import numpy as np

from verity.core.registry import Detector, register_detector
from verity.core.types import Finding, Sample

TILE = 32
#: Re-save qualities tried (those at or above the file's own quality are dropped; at most 10).
GHOST_QUALITIES = (40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90)


def ghost_score(peak_z: float, n_tiles: int, min_side: int = 2) -> float:
    """0.47 + up to 0.48 by the region's strongest tile z-score (6 to 12) and size (nothing for a
    single 32x32 tile or a one-tile-thin strip, full from 6 tiles at least 2 tiles high and wide):
    single-tile dips and strips such as caption bars occur in real photos."""
    conf = float(np.clip((peak_z - 6.0) / 6.0, 0.0, 1.0))
    size = float(np.clip((n_tiles - 1) / 5.0, 0.0, 1.0)) * float(np.clip(min_side - 1, 0, 1))
    return 0.47 + 0.48 * conf * size


@register_detector
class JpegGhost(Detector):
    """JPEG ghosts (Farid 2009): a region saved earlier at a lower JPEG quality than the rest.

    Method (:mod:`verity.ops.jpeg`): the image is re-saved (in the DCT domain, on the file's own
    8x8 grid, IJG tables) at up to ten qualities between 40 and 90 below the file's own quality,
    and the mean squared luma difference is measured per 32x32 tile. Each tile's difference curve
    is divided by its own mean (so texture cancels), and at each quality the tile is compared with
    the image's typical tile (robust z-score). A region once saved at quality q has an unusually
    small difference at q: a "ghost" of the earlier compression.

    Tiles with more than 20% clipped pixels are not judged. Score: 0.47 to 0.95 for a localized
    ghost by depth and size (a single tile or a one-tile strip counts for nothing); 0.47 when no
    tile stands out;
    0.5 (with a note) when most of the image shares the ghost (the whole file was re-saved).
    Weight 0.8: it confirms the aligned double-JPEG detector with an independent measurement,
    but it only sees regions that sit on the file's grid, needs the earlier quality to be lower,
    and smooth or saturated areas give weak, noisy curves.
    """

    name = "jpeg_ghost"
    kind = "compression"
    labels = ("edited",)
    weight = 0.8

    def run(self, sample: Sample) -> Finding:
        from verity.ops.jpeg import single_threaded

        with single_threaded():
            return self._run(sample)

    def _run(self, sample: Sample) -> Finding:
        import cv2

        from verity.ops import jpeg as J
        from verity.ops.regions import describe_box

        h, w = sample.height, sample.width
        if min(h, w) < 3 * TILE:
            return self.abstain(f"image is too small for JPEG ghosts ({w}x{h}, needs {3 * TILE} px)")
        stride = J.analysis_stride((h, w))
        pitch = TILE * stride
        details: dict[str, Any] = {"tile_px": pitch}
        q_last = None
        q2 = J.table_from_sample(sample.quantization, 0) if sample.format == "JPEG" else None
        if q2 is not None:
            q_last, _ = J.estimate_quality(q2)
            details["last_quality"] = int(q_last)
        qs = [q for q in GHOST_QUALITIES if q_last is None or q <= q_last - 3][-10:]
        if len(qs) < 3:
            return self.abstain(
                f"the file's quality (about {q_last}) is too low to look for earlier, lower-quality saves",
                **details,
            )
        details["qualities"] = qs
        coefs = J.block_dct_cached(sample.gray, TILE, stride)
        z, qbest, _ = J.ghost_tile_scores(coefs, qs)
        nty, ntx = z.shape
        # clipped tiles (over- or under-exposed, caption bars) re-save to near-identical values
        m = J.mosaic(sample.gray, TILE, stride)
        sat = J.tile_means(((m <= 4) | (m >= 251)).astype(np.uint8), TILE)[:nty, :ntx]
        z[sat > 0.2] = 0.0
        tiles = (1.0 / (1.0 + np.exp(-np.clip((z - 6.0) / 1.5, -50, 50)))).astype(np.float32)
        tiles[z <= 0] = 0.0
        heat = J.heat_from_tiles(tiles, (h, w), TILE, stride)
        judged = int((z != 0).sum())
        details["tiles_judged"] = judged
        details["z_max"] = round(float(z.max(initial=0.0)), 2)
        if judged < 8:
            return self.finding(0.5, ["Too little texture for JPEG ghosts."], heatmap=heat, details=details)
        mask = tiles >= 0.5
        frac = float(mask.sum()) / judged
        if not mask.any():
            return self.finding(
                0.47,
                [
                    f"No JPEG ghost: re-saving at qualities {qs[0]}..{qs[-1]} changes every textured "
                    f"part of the image alike ({judged} tiles of {pitch}x{pitch} px)."
                ],
                heatmap=heat,
                details=details,
            )
        if frac >= 0.5:
            return self.finding(
                0.5,
                [f"{100 * frac:.0f}% of the image shares a JPEG ghost: the whole file was re-saved."],
                heatmap=heat,
                details=details,
            )
        n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        def _score(i: int) -> float:
            return ghost_score(float(z[lab == i].max()), int(stats[i, 4]), int(min(stats[i, 2], stats[i, 3])))

        best = max(range(1, n), key=_score)
        sel = lab == best
        ys, xs = np.nonzero(sel)
        box = (int(xs.min() * pitch), int(ys.min() * pitch), int(min(w, xs.max() * pitch + TILE)), int(min(h, ys.max() * pitch + TILE)))
        peak = float(z[sel].max())
        q1 = int(np.bincount(qbest[sel]).argmax())
        score = _score(best)
        details.update({"region_box": list(box), "region_tiles": int(sel.sum()), "ghost_quality": q1, "regions": n - 1})
        ev = (
            f"The region at {describe_box(box)} shows a JPEG ghost at quality {q1}: re-saved at that "
            f"quality it changes far less than the rest of the image ({peak:.1f} times the usual "
            f"spread), so it was probably saved at about quality {q1} before"
            + (f", unlike the rest (last saved at quality {q_last})." if q_last else ".")
        )
        if score <= 0.47:
            ev = (
                f"No convincing JPEG ghost: the strongest dip (quality {q1}, at {describe_box(box)}) "
                f"covers a single tile or a thin strip, as smooth, clipped or caption areas do."
            )
            return self.finding(score, [ev], heatmap=heat, details=details)
        evidence = [ev]
        if score < 0.65:
            evidence.append("The ghost is small or shallow; smooth or saturated areas can produce such dips.")
        return self.finding(score, evidence, heatmap=heat, details=details)
