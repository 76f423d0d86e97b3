"""Looking an image up in the index: near duplicates, similar images, matching faces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from verity.index.features import QueryFeatures
from verity.index.pdq import MIN_QUALITY, NEAR_DUPLICATE
from verity.index.store import IndexStore


@dataclass
class Match:
    """An indexed image returned by :func:`search`.

    Attributes
    ----------
    sha256 : str
    kind : str
        ``"exact"`` (same file bytes), ``"near_duplicate"`` (PDQ distance within the threshold) or
        ``"similar"`` (embedding neighbour).
    pdq_distance : int or None
        Hamming distance of the PDQ hashes (None when the image was not among the PDQ neighbours).
    similarity : float or None
        Cosine similarity of the global embeddings (None when not among the embedding neighbours).
    record : dict
        Stored fields (label, source, path, size...).
    """

    sha256: str
    kind: str
    pdq_distance: int | None
    similarity: float | None
    record: dict = field(default_factory=dict)

    def to_dict(self, full_paths: bool = False) -> dict[str, Any]:
        """JSON-ready fields; ``name`` is the stored file name, ``path`` (the full path as stored on the
        machine that indexed it) only with ``full_paths`` (the local CLI), never for API clients."""
        d = {"sha256": self.sha256, "kind": self.kind, "pdq_distance": self.pdq_distance,
             "similarity": None if self.similarity is None else round(self.similarity, 4), **{
                 k: self.record.get(k) for k in ("label", "fake_class", "source", "width", "height", "n_faces")}}
        return _with_name(d, self.record, full_paths)


@dataclass
class FaceMatch:
    """An indexed face close to a face of the query."""

    query_face: int
    image_sha: str
    face_index: int
    similarity: float
    same_person: bool
    box: list
    record: dict = field(default_factory=dict)

    def to_dict(self, full_paths: bool = False) -> dict[str, Any]:
        d = {"query_face": self.query_face, "image_sha256": self.image_sha, "face_index": self.face_index,
             "similarity": round(self.similarity, 4), "same_person": self.same_person, "box": self.box,
             "label": self.record.get("label"), "source": self.record.get("source")}
        return _with_name(d, self.record, full_paths)


def display_name(path: str | None) -> str | None:
    """The file name of a stored path (either separator), None when nothing was stored."""
    if not path:
        return None
    return str(path).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or None


def _with_name(d: dict[str, Any], record: dict, full_paths: bool) -> dict[str, Any]:
    d["name"] = display_name(record.get("path"))
    if full_paths:
        d["path"] = record.get("path")
    return d


@dataclass
class SearchResult:
    sha256: str
    pdq_quality: int
    matches: list[Match]
    faces: list[FaceMatch]
    n_query_faces: int = 0

    @property
    def near_duplicates(self) -> list[Match]:
        return [m for m in self.matches if m.kind in ("exact", "near_duplicate")]

    def to_dict(self, full_paths: bool = False) -> dict[str, Any]:
        return {"sha256": self.sha256, "pdq_quality": self.pdq_quality, "query_faces": self.n_query_faces,
                "matches": [m.to_dict(full_paths) for m in self.matches],
                "faces": [f.to_dict(full_paths) for f in self.faces]}


def search(store: IndexStore, q: QueryFeatures, k: int = 10, near_duplicate: int = NEAR_DUPLICATE,
           face_threshold: float | None = None, faces: bool = True) -> SearchResult:
    """Find what the index knows about an image.

    Parameters
    ----------
    store : IndexStore
    q : QueryFeatures
        From :func:`verity.index.features.compute_features`.
    k : int
        Neighbours retrieved per kind (near duplicates, similar images, faces per query face).
    near_duplicate : int
        Largest PDQ Hamming distance called a near duplicate (default 31). Hashes of quality below
        50 (flat images) only count as near duplicates when identical in bytes.
    face_threshold : float, optional
        Same-person cosine threshold (default :data:`verity.face.identity.SAME_PERSON_THRESHOLD`).

    Returns
    -------
    SearchResult
        ``matches`` lists the exact copy first, then near duplicates by increasing PDQ distance,
        then the other similar images by decreasing cosine similarity.
    """
    if face_threshold is None:
        from verity.face.identity import SAME_PERSON_THRESHOLD

        face_threshold = SAME_PERSON_THRESHOLD
    pdq_hits = dict(store.search_pdq(q.pdq, k))
    emb_hits = dict(store.search_embedding(q.embedding, k))
    face_hits: list[tuple[int, dict]] = []
    if faces and q.faces:  # one request for all the faces of the query
        import numpy as np

        for i, hits in enumerate(store.search_faces_many(np.stack([f.embedding for f in q.faces]), k)):
            face_hits += [(i, h) for h in hits]
    records = store.fetch(list(pdq_hits) + list(emb_hits) + [h["image_sha"] for _, h in face_hits])
    reliable = q.pdq_quality >= MIN_QUALITY
    matches = []
    for sha in set(pdq_hits) | set(emb_hits):
        rec = records.get(sha)
        if rec is None:
            continue  # removed between the searches
        d = pdq_hits.get(sha)
        if sha == q.sha256:
            kind = "exact"
        elif d is not None and d <= near_duplicate and (reliable and (rec.get("pdq_quality") or 0) >= MIN_QUALITY):
            kind = "near_duplicate"
        else:
            kind = "similar"
        matches.append(Match(sha, kind, d, emb_hits.get(sha), rec))
    order = {"exact": 0, "near_duplicate": 1, "similar": 2}
    matches.sort(key=lambda m: (order[m.kind], m.pdq_distance if m.kind != "similar" and m.pdq_distance is not None else 0,
                                -(m.similarity if m.similarity is not None else -2.0)))
    # "similar" entries that are only PDQ neighbours (no embedding score) say little: keep them last
    matches = [m for m in matches if not (m.kind == "similar" and m.similarity is None)] + \
              [m for m in matches if m.kind == "similar" and m.similarity is None]
    fmatches = []
    for i, h in face_hits:
        rec = records.get(h["image_sha"])
        if rec is None:
            continue  # orphan face row (its image was removed or never committed)
        fmatches.append(FaceMatch(i, h["image_sha"], h["face_index"], h["similarity"], h["similarity"] >= face_threshold, h["box"], rec))
    fmatches.sort(key=lambda m: (m.query_face, -m.similarity))
    return SearchResult(q.sha256, q.pdq_quality, matches[: max(k, len([m for m in matches if m.kind != "similar"]))],
                        fmatches, len(q.faces))
