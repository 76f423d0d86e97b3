"""Same person or not: cosine similarity of FaceNet embeddings against a measured threshold.

The threshold was measured with ``verity train faces --identity --data ../shared/data`` on 1,244
faces of the shared data (genuine pairs: 140 pairs of photos of the same public figure in
``deepface_tests``, grouped by eye; impostor pairs: the other 759,388 pairs, mostly one photo per
person from LFW-gray, Congress portraits, FRL London and MEBeauty). See ``docs/faces.md`` for the
measured false accept and false reject rates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Cosine similarity at or above which two faces are called the same person (the impostor
#: similarity at a false accept rate of 0.1 % was 0.590; rounded up).
SAME_PERSON_THRESHOLD = 0.60
#: Measured at the threshold (docs/faces.md): share of impostor pairs accepted and of genuine pairs
#: rejected, and how many pairs of each there were.
MEASURED = {"far": 0.00079, "frr": 0.0071, "genuine_pairs": 140, "impostor_pairs": 759388}


@dataclass
class Comparison:
    """One face compared with one reference face."""

    similarity: float
    same_person: bool
    threshold: float = SAME_PERSON_THRESHOLD


def compare(a: np.ndarray, b: np.ndarray, threshold: float = SAME_PERSON_THRESHOLD) -> Comparison:
    """Compare two unit FaceNet embeddings (shape (512,))."""
    s = float(np.clip(np.dot(np.asarray(a, np.float64), np.asarray(b, np.float64)), -1.0, 1.0))
    return Comparison(similarity=s, same_person=s >= threshold, threshold=threshold)
