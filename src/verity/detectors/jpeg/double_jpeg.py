"""Double JPEG compression detector (aligned and non-aligned grids)."""

from __future__ import annotations

from typing import Any

import numpy as np

from verity.core.registry import Detector, register_detector
from verity.core.types import Finding, Sample

#: Tile side in pixels (4 x 4 JPEG blocks): the unit of the heatmap and of the decisions.
TILE = 32
#: Candidate qualities of an earlier compression (aligned test).
ALIGNED_QUALITIES = tuple(range(30, 96))
#: Share of the textured tiles away from the strongest region that carry a weaker trace of the
#: same earlier compression above which the file is called globally re-saved (169 synthetic
#: splices: at most 0.115; a cropped and re-saved camera photo: 0.58; a re-saved web photo: 0.23).
ELSEWHERE_GLOBAL = 0.18
#: Candidate qualities of an earlier compression on a shifted grid (DC step at least 5).
SHIFTED_QUALITIES = tuple(range(35, 91))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


def aligned_probability(llr: np.ndarray) -> np.ndarray:
    """Per-tile log-likelihood ratio (nats, 16 blocks) of an aligned earlier compression to [0, 1].

    Single-compressed tiles stay below about 10 nats; tiles of a region compressed first at a
    lower quality reach 50 to several hundred.
    """
    return _sigmoid((np.asarray(llr, np.float64) - 30.0) / 6.0).astype(np.float32)


def shifted_probability(z_window: np.ndarray, z_tile: np.ndarray) -> np.ndarray:
    """Per-tile evidence of a shifted earlier grid to [0, 1].

    ``z_window`` (3 x 3 tiles) decides whether there is a shifted lattice nearby (noise reaches
    about 7 over all 63 shifts x candidate qualities of a photo; 8.5 is the midpoint);
    ``z_tile`` (the tile alone, same candidate) says whether this tile carries it, which keeps
    the map from bleeding one tile past the region.
    """
    zw = np.asarray(z_window, np.float64)
    zt = np.asarray(z_tile, np.float64)
    return (_sigmoid((zw - 8.5) / 1.0) * _sigmoid((zt - 2.5) / 1.0)).astype(np.float32)


def region_score(peak: float, n_tiles: int) -> float:
    """Score of the strongest localized region: 0.5 + up to 0.48 by its peak tile probability
    (0.5..1) and its size (full weight from 4 tiles of 32x32 px)."""
    conf = float(np.clip(2.0 * (peak - 0.5), 0.0, 1.0))
    size = 0.55 + 0.45 * min(1.0, n_tiles / 4.0)
    return 0.5 + 0.48 * conf * size


@register_detector
class DoubleJpeg(Detector):
    """JPEG double compression, aligned and non-aligned (after Lin et al. 2009 and Bianchi & Piva
    2012): finds regions whose compression history differs from the rest of the image.

    Method (:mod:`verity.ops.jpeg`), on luma cut into 32x32 tiles:

    * **Aligned** (JPEG input only): the DCT coefficients of every block are re-quantized with the
      file's own luma table. A block once compressed at a *lower* quality keeps the periodic gaps
      of that coarser quantizer, so its coefficients can only take certain values; each candidate
      IJG quality 30..95 gets a log-likelihood ratio per tile from the tile's coefficient
      histogram.
    * **Non-aligned** (any input): for all 64 grid shifts, the DC coefficients of the blocks of
      that grid (one box filter) are tested against the lattice of every candidate DC step; the
      best (shift, quality) pairs are re-tested with five low AC frequencies. A pasted region that
      was compressed on its own grid shows a lattice at a shift the rest of the image lacks.

    Tiles with strong evidence form the heatmap; the largest connected group is reported with its
    box. When the evidence covers most of the textured image, the whole file was re-saved (or
    cropped and re-saved); that is reported but is not evidence of editing (score 0.5).

    Score: 0.5 to 0.98 for a localized region (by strength and size); 0.45 when a JPEG's blocks
    are consistent with a single compression over enough textured tiles (weak evidence of
    authenticity: edits made before the last save, such as copy-move, leave no such trace); 0.47
    for other input without a local grid; 0.5 for a globally re-saved file or too little texture.
    Weight 1.5: a localized double-compression trace is rarely produced by anything but pasting
    or local re-saving; the main blind spots (first quality higher than the last, regions smaller
    than about 64x64 px, heavy resizing) make it miss, not fire.
    """

    name = "jpeg_double"
    kind = "compression"
    labels = ("edited",)
    weight = 1.5

    def run(self, sample: Sample) -> Finding:
        from verity.ops.jpeg import single_threaded

        with single_threaded():
            return self._run(sample)

    def _run(self, sample: Sample) -> Finding:
        from verity.ops import jpeg as J

        h, w = sample.height, sample.width
        if min(h, w) < 3 * TILE:
            return self.abstain(f"image is too small for block statistics ({w}x{h}, needs {3 * TILE} px)")
        y = sample.gray
        stride = J.analysis_stride((h, w))
        pitch = TILE * stride
        q2 = J.table_from_sample(sample.quantization, 0) if sample.format == "JPEG" else None
        is_jpeg = q2 is not None
        coefs = J.block_dct_cached(y, TILE, stride)
        nby, nbx = coefs.shape[:2]
        nty, ntx = nby // 4, nbx // 4
        # textured tiles: enough low-frequency AC energy to carry either trace
        zz = J.zigzag_indices()[1:10]
        ac = np.abs(coefs.reshape(nby, nbx, 64)[:, :, zz]).sum(-1)
        textured = (ac[: nty * 4, : ntx * 4].reshape(nty, 4, ntx, 4) > 12.0).mean(axis=(1, 3)) >= 0.5
        details: dict[str, Any] = {"format": sample.format, "tile_px": pitch, "tiles": int(nty * ntx), "textured_tiles": int(textured.sum())}
        details["analysed"] = "every tile" if stride == 1 else f"one {TILE}x{TILE} tile in every {pitch}x{pitch} px"

        p_al = np.zeros((nty, ntx), np.float32)
        q_al = np.zeros((nty, ntx), int)
        ctx: dict[str, Any] = {"llr": None, "textured": textured}
        if is_jpeg:
            q_last, mismatch = J.estimate_quality(q2)
            details.update({"last_quality": int(q_last), "table_mismatch": round(float(mismatch), 3)})
            llr = J.dq_tile_loglik(coefs[: nty * 4, : ntx * 4], q2, list(ALIGNED_QUALITIES))
            ctx["llr"] = llr
            p_al = aligned_probability(llr.max(-1))
            q_al = np.asarray(ALIGNED_QUALITIES)[llr.argmax(-1)]
            details["aligned_llr_max"] = round(float(llr.max()), 1)
        zw, zt, best, cands, cmaps = J.nonaligned_scan(
            y,
            list(SHIFTED_QUALITIES),
            exclude_origin=is_jpeg,
            origin_step=int(q2[0, 0]) if is_jpeg else None,
            tile=TILE,
            stride=stride,
        )
        zw, zt, best = zw[:nty, :ntx], zt[:nty, :ntx], best[:nty, :ntx]
        ctx["cmaps"] = [m[:nty, :ntx] for m in cmaps]
        p_na = shifted_probability(zw, zt)
        details["shifted_z_max"] = round(float(zw.max(initial=0.0)), 2)
        tiles = np.maximum(p_al, p_na)
        heat = J.heat_from_tiles(tiles, (h, w), TILE, stride)
        n_text = int(textured.sum())
        if n_text < 4:
            return self.finding(
                0.5,
                ["Too little texture to read the JPEG block statistics (flat or tiny image)."],
                heatmap=heat,
                details=details,
            )

        mask = tiles >= 0.5
        frac = float((mask & textured).sum()) / max(1, n_text)
        details["flagged_fraction"] = round(frac, 3)
        if mask.any() and frac >= 0.5:
            return self._global(p_al, p_na, q_al, best, cands, frac, heat, details, is_jpeg)
        if mask.any():
            return self._local(y, q2, tiles, p_al, p_na, q_al, best, cands, mask, heat, details, stride, ctx)

        score = 0.45 if (is_jpeg and n_text >= 20) else 0.47
        what = (
            f"The JPEG blocks are consistent with a single compression history across "
            f"{n_text} textured tiles of {pitch}x{pitch} px (no region carries the trace of an "
            f"earlier, different compression)."
            if is_jpeg
            else f"No region carries a JPEG block grid of its own ({n_text} textured tiles of "
            f"{pitch}x{pitch} px checked at all 64 grid offsets)."
        )
        return self.finding(score, [what], heatmap=heat, details=details)

    def _local(
        self,
        y: np.ndarray,
        q2: np.ndarray | None,
        tiles: np.ndarray,
        p_al: np.ndarray,
        p_na: np.ndarray,
        q_al: np.ndarray,
        best: np.ndarray,
        cands: list,
        mask: np.ndarray,
        heat: np.ndarray,
        details: dict[str, Any],
        stride: int,
        ctx: dict[str, Any],
    ) -> Finding:
        import cv2

        from verity.ops import jpeg as J
        from verity.ops.regions import describe_box

        h, w = y.shape
        pitch = TILE * stride
        n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        comps = []
        for i in range(1, n):
            sel = lab == i
            comps.append((float(tiles[sel].max()) * min(1.0, sel.sum() / 4.0), i, sel))
        comps.sort(key=lambda c: -c[0])
        # block-resolution heatmap: tile values, replaced by per-block evidence around each region
        bh, bw = -(-h // 8), -(-w // 8)
        rep = pitch // 8
        fine = np.kron(heat, np.ones((rep, rep), np.float32))[:bh, :bw]
        fine = np.pad(fine, ((0, bh - fine.shape[0]), (0, bw - fine.shape[1])))
        found = []
        for _, ci, sel in comps[:3]:
            tx0, ty0, tw, th = (int(v) for v in stats[ci, :4])
            wx0, wy0 = max(0, (tx0 - 1) * pitch), max(0, (ty0 - 1) * pitch)
            wx1, wy1 = min(w, (tx0 + tw + 1) * pitch), min(h, (ty0 + th + 1) * pitch)
            aligned = float(p_al[sel].max()) >= float(p_na[sel].max())
            if aligned and q2 is not None:
                m = sel & (p_al >= 0.5)
                q1 = int(np.bincount(q_al[m]).argmax()) if m.any() else int(q_al[sel].max())
                ev_map = J.refine_aligned(y, (wx0, wy0, wx1, wy1), q2, q1)
                block = 1.0 / (1.0 + np.exp(-np.clip((ev_map - 10.0) / 3.0, -50, 50)))
                info = ("aligned", q1, None)
            else:
                m = sel & (best >= 0)
                k = int(np.bincount(best[m]).argmax()) if m.any() else 0
                if not cands:
                    continue
                dy, dx, q1 = cands[k]
                ev_map = J.refine_shifted(y, (wx0, wy0, wx1, wy1), (dy, dx), q1, window=5)
                block = 1.0 / (1.0 + np.exp(-np.clip((ev_map - 3.0) / 0.7, -50, 50)))
                info = ("shifted", q1, (dx, dy))
            by0, bx0 = wy0 // 8, wx0 // 8
            hh, ww = min(block.shape[0], bh - by0), min(block.shape[1], bw - bx0)
            fine[by0 : by0 + hh, bx0 : bx0 + ww] = block[:hh, :ww]
            found.append((sel, info, (wx0, wy0, wx1, wy1)))
        if not found:
            return self.finding(0.47, ["No region shows a double-compression trace."], heatmap=heat, details=details)
        # the strongest region's refined box
        sel, (mode, q1, shift), (wx0, wy0, wx1, wy1) = found[0]
        # is the same trace, weaker, all over the image? (a whole re-saved file, not a paste)
        near = cv2.dilate(sel.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        outside = ctx["textured"] & ~near
        elsewhere = 0.0
        if outside.sum() >= 8:
            if mode == "aligned" and ctx["llr"] is not None:
                qi = ALIGNED_QUALITIES.index(int(q1))
                elsewhere = float((ctx["llr"][..., qi][outside] > 0).mean())
            elif mode == "shifted":
                k = [c[:2] for c in cands].index((shift[1], shift[0])) if (shift[1], shift[0]) in [c[:2] for c in cands] else -1
                if k >= 0:
                    elsewhere = float((ctx["cmaps"][k][outside] > 2.0).mean())
        details["trace_elsewhere"] = round(elsewhere, 3)
        if elsewhere >= ELSEWHERE_GLOBAL:
            details.update({"mode": "global_" + mode, "first_quality": int(q1)})
            if mode == "shifted":
                details["grid_shift"] = [int(shift[0]), int(shift[1])]
                how = f"on a grid shifted by {shift[0]} px horizontally and {shift[1]} px vertically (cropped, then re-saved)"
            else:
                how = "on the file's own grid (re-saved)"
            ev = (
                f"An earlier JPEG compression at about quality {q1} {how} shows strongly in a few places and "
                f"weakly across {100 * elsewhere:.0f}% of the rest of the image: the whole file was "
                f"compressed twice. Re-saving alone is not evidence of editing."
            )
            return self.finding(0.5, [ev], heatmap=fine, details=details)
        sub = fine[wy0 // 8 : -(-wy1 // 8), wx0 // 8 : -(-wx1 // 8)] >= 0.5
        nl, lab2, st2, _ = cv2.connectedComponentsWithStats(sub.astype(np.uint8), connectivity=8)
        if nl > 1:
            j = 1 + int(np.argmax(st2[1:, 4]))
            bx, byy, bww, bhh = (int(v) for v in st2[j, :4])
            box = (wx0 - wx0 % 8 + 8 * bx, wy0 - wy0 % 8 + 8 * byy, 0, 0)
            box = (box[0], box[1], min(w, box[0] + 8 * bww), min(h, box[1] + 8 * bhh))
        else:
            ys, xs = np.nonzero(sel)
            box = (int(xs.min() * pitch), int(ys.min() * pitch), int(min(w, xs.max() * pitch + TILE)), int(min(h, ys.max() * pitch + TILE)))
        peak = float(tiles[sel].max())
        score = region_score(peak, int(sel.sum()))
        details.update({"region_box": list(box), "region_tiles": int(sel.sum()), "regions": len(comps)})
        if mode == "aligned":
            details.update({"mode": "aligned", "first_quality": int(q1)})
            last = f"quality {details['last_quality']}" if "last_quality" in details else "the last quality"
            ev = (
                f"The region at {describe_box(box)} was compressed twice at different qualities: its "
                f"DCT coefficients keep the gaps left by an earlier JPEG compression at about quality "
                f"{q1}, which the rest of the image does not show (last saved at {last})."
            )
        else:
            dx, dy = shift
            details.update({"mode": "shifted", "grid_shift": [int(dx), int(dy)], "first_quality": int(q1)})
            ev = (
                f"The region at {describe_box(box)} was compressed twice at different qualities: it "
                f"carries a second JPEG block grid shifted by {dx} px horizontally and {dy} px "
                f"vertically from the file's grid (an earlier compression at about quality {q1}), "
                f"which the rest of the image lacks, as when a separately compressed piece is pasted in."
            )
        evidence = [ev]
        if len(comps) > 1:
            evidence.append(f"{len(comps) - 1} smaller area(s) show the same kind of trace.")
        return self.finding(score, evidence, heatmap=fine, details=details)

    def _global(
        self,
        p_al: np.ndarray,
        p_na: np.ndarray,
        q_al: np.ndarray,
        best: np.ndarray,
        cands: list,
        frac: float,
        heat: np.ndarray,
        details: dict[str, Any],
        is_jpeg: bool,
    ) -> Finding:
        if p_al.sum() >= p_na.sum():
            m = p_al >= 0.5
            q1 = int(np.bincount(q_al[m]).argmax()) if m.any() else 0
            details.update({"mode": "global_aligned", "first_quality": q1})
            ev = (
                f"The whole image ({100 * frac:.0f}% of its textured area) was JPEG-compressed twice: "
                f"first at about quality {q1}, then re-saved. Re-saving alone is not evidence of "
                f"editing, and it hides local traces."
            )
        else:
            m = p_na >= 0.5
            k = int(np.bincount(best[m & (best >= 0)]).argmax()) if (m & (best >= 0)).any() else 0
            dy, dx, q1 = cands[k] if cands else (0, 0, 0)
            details.update({"mode": "global_shifted", "grid_shift": [int(dx), int(dy)], "first_quality": int(q1)})
            if is_jpeg:
                ev = (
                    f"The whole image ({100 * frac:.0f}% of its textured area) carries an earlier JPEG "
                    f"grid shifted by {dx} px horizontally and {dy} px vertically (earlier quality about "
                    f"{q1}): it was cropped and re-saved. That alone is not evidence of editing."
                )
            else:
                ev = (
                    f"The image was JPEG-compressed before being saved as {details.get('format', 'this format')} "
                    f"(a block grid at offset {dx}, {dy} covers {100 * frac:.0f}% of its textured area)."
                )
        return self.finding(0.5, [ev], heatmap=heat, details=details)
