"""What the index stores about an image, computed from a loaded :class:`~verity.core.types.Sample`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from verity.core.types import Sample
from verity.index.store import FaceEntry, ImageRecord


@dataclass
class QueryFeatures:
    """Features of an image to look up (also what :func:`image_record` stores)."""

    sha256: str
    embedding: np.ndarray
    pdq: np.ndarray
    pdq_quality: int
    width: int
    height: int
    faces: list[FaceEntry] = field(default_factory=list)


def compute_features(sample: Sample, faces: bool = True) -> QueryFeatures:
    """PDQ hash, global embedding and (optionally) face embeddings, all on display-orientation pixels.

    Parameters
    ----------
    sample : Sample
    faces : bool
        Detect and embed faces (needs the ``[faces]`` extra; skipped silently when it is missing).
    """
    from verity.index.embedding import get_embedder
    from verity.index.pdq import pdq_hash

    px = np.ascontiguousarray(sample.display_pixels())
    bits, quality = pdq_hash(px)
    emb = get_embedder().embed(px)
    found: list[FaceEntry] = []
    if faces:
        try:
            from verity.face.facenet import FaceModelMissing
            from verity.face.pipeline import find_faces

            try:
                for f in find_faces(px, embed=True):
                    d = f.detection
                    found.append(FaceEntry(tuple(float(v) for v in d.box), float(d.score), f.embedding))
            except FaceModelMissing:
                pass
        except ImportError:
            pass
    return QueryFeatures(sample.sha256, emb, bits, quality, int(px.shape[1]), int(px.shape[0]), found)


def image_record(sample: Sample, label: str = "unlabelled", source: str = "", fake_class: str = "",
                 faces: bool = True) -> ImageRecord:
    """The :class:`ImageRecord` to store for ``sample``."""
    q = compute_features(sample, faces=faces)
    return ImageRecord(
        sha256=q.sha256, embedding=q.embedding, pdq=q.pdq, pdq_quality=q.pdq_quality, label=label, source=source,
        path=sample.path or "", width=q.width, height=q.height, fake_class=fake_class, faces=q.faces,
    )
