"""A small face tracker: greedy matching of each sampled frame's detections to the live tracks by
box overlap (IoU), with a fallback on centre distance and size for faces that moved more than their
width between two samples. No appearance embedding: at a few samples per second, position and size
separate the faces of ordinary footage, and FaceNet would cost about 50 ms per face.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def iou(a, b) -> float:
    ax0, ay0, ax1, ay1 = a
    bx0, by0, bx1, by1 = b
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter / union if union > 0 else 0.0


def _centre_cost(a, b) -> float | None:
    """Centre distance in units of the mean box width, or None when the sizes differ too much."""
    wa, wb = a[2] - a[0], b[2] - b[0]
    if wa <= 0 or wb <= 0 or not 0.6 <= wa / wb <= 1.67:
        return None
    ca = np.array([(a[0] + a[2]) / 2, (a[1] + a[3]) / 2])
    cb = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])
    return float(np.linalg.norm(ca - cb) / ((wa + wb) / 2))


@dataclass
class TrackState:
    """A face followed over the sampled frames (``obs`` holds one dict per frame it was seen in)."""

    id: int
    obs: list[dict[str, Any]] = field(default_factory=list)
    missed: int = 0

    @property
    def last_box(self):
        return self.obs[-1]["box"]


class FaceTracker:
    """Greedy IoU tracker.

    Parameters
    ----------
    min_iou : float
        Least overlap for a match by IoU.
    max_jump : float
        Largest centre move (in box widths) accepted between two samples when the boxes do not overlap.
    max_missed : int
        A track ends after this many samples without its face.
    """

    def __init__(self, min_iou: float = 0.3, max_jump: float = 1.5, max_missed: int = 2):
        self.min_iou, self.max_jump, self.max_missed = min_iou, max_jump, max_missed
        self.live: list[TrackState] = []
        self.done: list[TrackState] = []
        self._next = 1

    def update(self, observations: list[dict[str, Any]]) -> list[int]:
        """Assign each observation (a dict with at least ``box``) to a track; returns the track ids."""
        pairs = []
        for ti, tr in enumerate(self.live):
            for oi, ob in enumerate(observations):
                v = iou(tr.last_box, ob["box"])
                if v >= self.min_iou:
                    pairs.append((1.0 - v, ti, oi))
                else:
                    c = _centre_cost(tr.last_box, ob["box"])
                    if c is not None and c <= self.max_jump * (1 + tr.missed):
                        pairs.append((1.0 + c, ti, oi))
        pairs.sort()
        used_t, used_o, ids = set(), set(), [0] * len(observations)
        for _, ti, oi in pairs:
            if ti in used_t or oi in used_o:
                continue
            used_t.add(ti)
            used_o.add(oi)
            self.live[ti].obs.append(observations[oi])
            self.live[ti].missed = 0
            ids[oi] = self.live[ti].id
        for oi, ob in enumerate(observations):
            if oi not in used_o:
                tr = TrackState(self._next, [ob])
                self._next += 1
                self.live.append(tr)
                used_t.add(len(self.live) - 1)
                ids[oi] = tr.id
        keep = []
        for ti, tr in enumerate(self.live):
            if ti not in used_t:
                tr.missed += 1
            (keep if tr.missed <= self.max_missed else self.done).append(tr)
        self.live = keep
        return ids

    def tracks(self) -> list[TrackState]:
        """Every track, live or ended, by id."""
        return sorted(self.done + self.live, key=lambda t: t.id)
