"""Acceptance tests of the JPEG detectors: jpeg_double, jpeg_ghost, jpeg_ela.

Splices are made with verity.lab.edits.make_splice: a region of a donor photo saved at quality 60
pasted into a host photo saved at quality 92, and the result saved at quality 92. "aligned" pastes
land on the host's 8x8 grid (the donor's blocks coincide with the file's), "shifted" ones do not,
and "random" uses make_splice's own random placement.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from PIL import Image

from tests.conftest import photo
from verity.core.io import decode, load_sample
from verity.core.registry import create_detector
from verity.lab.edits import encode_jpeg, jpeg_roundtrip, make_splice, random_box, textured_image
from verity.ops.regions import heatmap_mask, mask_iou

PAIRS = [("astronaut", "coffee"), ("coffee", "chelsea"), ("chelsea", "astronaut")]
SEEDS = (1, 2, 4)


def splice(host: str, donor: str, seed: int, mode: str, q_host: int = 92, q_donor: int = 60):
    """(sample, forgery) for a splice of ``donor`` into ``host``; mode aligned / shifted / random."""
    rng = np.random.default_rng(seed)
    hi, di = photo(host), photo(donor)
    h, w = hi.shape[:2]
    if mode == "random":
        f = make_splice(hi, di, rng, q_host=q_host, q_donor=q_donor)
    else:
        x0, y0, x1, y1 = random_box(rng, (h, w), (0.2, 0.35))
        bw, bh = x1 - x0, y1 - y0
        if mode == "aligned":
            x0, y0 = x0 - x0 % 8, y0 - y0 % 8
        else:
            x0, y0 = x0 + (3 if x0 % 8 == 0 else 0), y0 + (5 if y0 % 8 == 0 else 0)
        sy = int(rng.integers(0, di.shape[0] - bh))
        sx = int(rng.integers(0, di.shape[1] - bw))
        # a donor exactly the size of the box starts its own grid at the box corner
        piece = np.ascontiguousarray(di[sy : sy + bh, sx : sx + bw])
        f = make_splice(hi, piece, rng, q_host=q_host, q_donor=q_donor, box=(x0, y0, x0 + bw, y0 + bh))
    return decode(f.data), f


def _run(name: str, sample):
    return create_detector(name).run(sample)


def _hit(finding, forgery, score: float = 0.8) -> bool:
    if finding.score is None or finding.score < score or finding.heatmap is None:
        return False
    m = heatmap_mask(finding.heatmap, forgery.mask.shape)
    return mask_iou(m, forgery.mask) >= 0.3


@pytest.mark.parametrize("mode", ["aligned", "shifted", "random"])
@pytest.mark.parametrize("host,donor", PAIRS)
def test_double_jpeg_finds_splice(host, donor, mode):
    hits = []
    for seed in SEEDS:
        s, f = splice(host, donor, seed, mode)
        F = _run("jpeg_double", s)
        assert F.score is not None
        hits.append(_hit(F, f))
        if hits[-1]:
            assert "compressed twice at different qualities" in F.evidence[0]
            assert "x=" in F.evidence[0] and "y=" in F.evidence[0]
            assert 55 <= F.details["first_quality"] <= 65
    assert sum(hits) >= 2, f"{host}/{donor} {mode}: hits per seed {hits}"


def test_double_jpeg_overall_rate():
    """Over 3 pairs x 3 seeds x 3 placements, at least 85% score >= 0.8 with IoU >= 0.3."""
    res = [_hit(_run("jpeg_double", s), f) for h, d in PAIRS for seed in SEEDS for m in ("aligned", "shifted", "random") for s, f in [splice(h, d, seed, m)]]
    assert np.mean(res) >= 0.85, res


def test_double_jpeg_reports_mode_and_shift():
    s, f = splice("coffee", "chelsea", 2, "shifted")
    F = _run("jpeg_double", s)
    assert F.details["mode"] == "shifted"
    dx, dy = F.details["grid_shift"]
    assert (dx, dy) == (f.box[0] % 8, f.box[1] % 8)
    s, f = splice("coffee", "chelsea", 2, "aligned")
    F = _run("jpeg_double", s)
    assert F.details["mode"] == "aligned" and F.details["first_quality"] == 60
    assert F.details["last_quality"] == 92


@pytest.mark.parametrize("mode", ["aligned"])
@pytest.mark.parametrize("host,donor", PAIRS)
def test_ghost_finds_aligned_splice(host, donor, mode):
    hits = [_hit(_run("jpeg_ghost", s), f, 0.75) for seed in SEEDS for s, f in [splice(host, donor, seed, mode)]]
    assert sum(hits) >= 2, hits


def test_ghost_reports_quality():
    s, f = splice("astronaut", "coffee", 1, "aligned")
    F = _run("jpeg_ghost", s)
    assert F.score >= 0.75
    assert 55 <= F.details["ghost_quality"] <= 65
    assert "JPEG ghost at quality" in F.evidence[0]


SINGLE = [(n, q) for n in ("astronaut", "coffee", "chelsea", "textured") for q in (75, 85, 95)]


@pytest.mark.parametrize("name,q", SINGLE)
def test_single_compression_is_not_flagged(name, q):
    img = textured_image(np.random.default_rng(3)) if name == "textured" else photo(name)
    s = decode(encode_jpeg(img, q))
    for det in ("jpeg_double", "jpeg_ghost", "jpeg_ela"):
        F = _run(det, s)
        assert F.score is not None and F.score < 0.5, (det, F.score, F.evidence)
    assert _run("jpeg_double", s).score <= 0.45


def test_ela_stays_weak_on_splices():
    for h, d in PAIRS:
        s, f = splice(h, d, 1, "random")
        F = _run("jpeg_ela", s)
        assert F.score <= 0.6
        assert F.heatmap is not None and F.heatmap.max() <= 1.0
        hh, ww = F.heatmap.shape
        assert abs(hh / ww - s.height / s.width) < 0.02


def test_ela_heatmap_is_capped():
    big = np.tile(photo("astronaut"), (3, 3, 1))  # 1536 x 1536
    F = _run("jpeg_ela", decode(encode_jpeg(big, 90)))
    assert max(F.heatmap.shape) <= 1024


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def test_double_jpeg_on_png_with_pasted_jpeg():
    host = photo("astronaut")
    donor = jpeg_roundtrip(photo("coffee"), 60)
    out = host.copy()
    out[205:355, 103:243] = donor[40:190, 60:200]
    mask = np.zeros(host.shape[:2], bool)
    mask[205:355, 103:243] = True
    F = _run("jpeg_double", decode(_png(out)))
    assert F.score >= 0.8
    assert mask_iou(heatmap_mask(F.heatmap, mask.shape), mask) >= 0.3
    clean = _run("jpeg_double", decode(_png(host)))
    assert clean.score < 0.5


def test_whole_image_resave_is_not_editing():
    a = jpeg_roundtrip(photo("coffee"), 60)
    F = _run("jpeg_double", decode(encode_jpeg(a, 90)))
    assert F.score == 0.5 and F.details["mode"] == "global_aligned"
    assert "re-saved" in F.evidence[0]
    F = _run("jpeg_double", decode(encode_jpeg(np.ascontiguousarray(a[3:, 5:]), 90)))
    assert F.score == 0.5 and F.details["mode"] == "global_shifted"
    assert F.details["grid_shift"] == [3, 5]


def test_small_and_flat_images():
    tiny = decode(encode_jpeg(np.zeros((40, 50, 3), np.uint8), 90))
    for det in ("jpeg_double", "jpeg_ghost", "jpeg_ela"):
        assert _run(det, tiny).score is None
    flat = decode(encode_jpeg(np.full((200, 240, 3), 120, np.uint8), 90))
    for det in ("jpeg_double", "jpeg_ghost", "jpeg_ela"):
        F = _run(det, flat)
        assert F.score is None or 0.4 <= F.score <= 0.5


def test_low_quality_file_ghost_abstains():
    s = decode(encode_jpeg(photo("coffee"), 45))
    F = _run("jpeg_ghost", s)
    assert F.score is None and "too low" in F.evidence[0]


@pytest.mark.slow
def test_real_camera_false_positive_rate(shared_data):
    """Single-compressed camera JPEGs (first 40 of real_camera in the manifest): rate of scores
    >= 0.65. Measured 0/40 for jpeg_double when written; the bound leaves room for noise."""
    rows = [r for r in csv.DictReader(open(shared_data / "manifest.csv")) if r["class"] == "real_camera"][:40]
    dets = {n: create_detector(n) for n in ("jpeg_double", "jpeg_ghost", "jpeg_ela")}
    high = {n: 0 for n in dets}
    for r in rows:
        s = load_sample(shared_data / r["path"])
        for n, d in dets.items():
            sc = d.run(s).score
            high[n] += sc is not None and sc >= 0.65
    for n, k in high.items():
        assert k / len(rows) <= 0.1, (n, k, len(rows))


def _bench(argv: list[str] | None = None) -> None:
    """Timing and false-positive measurements (not a test). Run from the repository root:

        python -m tests.detectors.test_jpeg_detectors [--data ../shared/data] [--repeat 5]

    Prints the median wall and CPU time per detector on synthetic 1 MP and 12 MP JPEGs (one
    thread), and with ``--data`` the share of real camera / processed photos scoring >= 0.65.
    """
    import argparse
    import time
    from pathlib import Path

    import cv2

    cv2.setNumThreads(1)
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=None)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--splices", action="store_true", help="detection rates on synthetic splices")
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--qualities", action="store_true", help="hit rates over host/donor/final qualities")
    a = ap.parse_args(argv)
    names = ("jpeg_double", "jpeg_ghost", "jpeg_ela")
    if a.qualities:
        combos = [(92, 60, 92), (92, 75, 92), (92, 85, 92), (95, 60, 85), (95, 75, 85), (85, 70, 90), (90, 50, 75), (75, 90, 75), (95, 95, 80)]
        for qh, qd, qf in combos:
            res = {n: 0 for n in ("jpeg_double", "jpeg_ghost")}
            cases = [(h, d, seed) for h, d in [("astronaut", "coffee"), ("coffee", "chelsea"), ("rocket", "astronaut")] for seed in (7, 8)]
            for h, d, seed in cases:
                f = make_splice(photo(h), photo(d), np.random.default_rng(seed), q_host=qh, q_donor=qd, q_final=qf)
                smp = decode(f.data)
                for n in res:
                    res[n] += _hit(create_detector(n).run(smp), f)
            print(f"host q{qh} donor q{qd} final q{qf}: " + "  ".join(f"{n} {k}/{len(cases)}" for n, k in res.items()))
    if a.splices:
        # "tuning": the pairs and seeds looked at while setting thresholds; "held-out": hosts,
        # donors and seeds never looked at during development
        sets = {
            "tuning": [(h, d, seed) for h, d in PAIRS for seed in range(1, 6)],
            "held-out": [(h, d, seed) for h, d in [("rocket", "astronaut"), ("hubble_deep_field", "coffee"), ("camera", "rocket")] for seed in range(100, 105)],
        }
        for label, cases in sets.items():
            for mode in ("aligned", "shifted", "random"):
                for n in ("jpeg_double", "jpeg_ghost"):
                    det = create_detector(n)
                    hits, high = 0, 0
                    for h, d, seed in cases:
                        smp, f = splice(h, d, seed, mode)
                        F = det.run(smp)
                        high += F.score is not None and F.score >= 0.8
                        hits += _hit(F, f)
                    print(f"splices {label:8s} {mode:8s} {n:12s} score>=0.8: {high}/{len(cases)}  score>=0.8 and IoU>=0.3: {hits}/{len(cases)}")
    if a.no_timing:
        names_t: tuple = ()
    else:
        names_t = names
    base = photo("astronaut")
    for label, (hh, ww) in (("1 MP", (864, 1152)), ("12 MP", (3000, 4000))) if names_t else ():
        img = np.tile(base, (-(-hh // 512), -(-ww // 512), 1))[:hh, :ww]
        img = np.clip(img.astype(np.int16) + np.random.default_rng(0).integers(-3, 4, img.shape), 0, 255).astype(np.uint8)
        s = decode(encode_jpeg(img, 90))
        for n in names:
            d = create_detector(n)
            walls, cpus = [], []
            for _ in range(a.repeat):
                s2 = decode(s.data)  # fresh sample: no cached luma or DCT
                t0, c0 = time.perf_counter(), time.process_time()
                d.run(s2)
                walls.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
            print(f"{label:6s} {n:12s} wall median {1000 * np.median(walls):7.1f} ms   cpu median {1000 * np.median(cpus):7.1f} ms")
    if a.data:
        root = Path(a.data)
        rows = list(csv.DictReader(open(root / "manifest.csv")))
        dets = {n: create_detector(n) for n in names}
        groups = [("real_camera", "class", a.limit), ("real_processed", "class", a.limit)]
        groups += [(src, "source", 30) for src in ("deepface_tests", "lfw_gray", "congress_portraits", "frl_london", "mebeauty_wild")]
        for name, col, limit in groups:
            sel = [r for r in rows if r[col] == name][:limit]
            high = {n: 0 for n in names}
            for r in sel:
                s = load_sample(root / r["path"])
                for n, d in dets.items():
                    sc = d.run(s).score
                    high[n] += sc is not None and sc >= 0.65
            for n in names:
                print(f"{name:18s} {n:12s} score >= 0.65: {high[n]}/{len(sel)}")


if __name__ == "__main__":
    _bench()
