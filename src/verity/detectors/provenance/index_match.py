"""Index match: is this image a near duplicate of a known fake in the local similarity index?"""

from __future__ import annotations

import threading

from verity.core.registry import Detector, register_detector
from verity.core.types import Finding, Sample

_STORES: dict[tuple[str, str], object] = {}
_LOCK = threading.Lock()


def _store(index_dir, uri):
    from verity.index.store import IndexStore

    key = (str(index_dir), str(uri))
    with _LOCK:
        st = _STORES.get(key)
        if st is None:
            st = IndexStore(index_dir, uri=uri, read_only=True)
            _STORES[key] = st
        return st


def close_cached() -> None:
    """Close the read-only stores this detector keeps open (tests, long-running servers)."""
    with _LOCK:
        for st in _STORES.values():
            try:
                st.close()
            except Exception:
                pass
        _STORES.clear()


def known_fake_score(distance: int, near_duplicate: int = 31) -> float:
    """0.99 for an identical hash, falling linearly to 0.80 at the near-duplicate threshold."""
    d = min(max(int(distance), 0), near_duplicate)
    return 0.99 - 0.19 * d / max(near_duplicate, 1)


@register_detector
class IndexMatch(Detector):
    """Index match: looks the image up in the local similarity index (PDQ near duplicates, embeddings).

    Only runs when an index exists at the default location (``$VERITY_DATA_DIR/index``,
    ``~/.local/share/verity/index``) or ``$VERITY_MILVUS_URI`` names a server. A near duplicate (PDQ
    Hamming distance <= 31) of an image stored as ``fake`` or ``known_fake`` gives a high score
    (0.99 at distance 0 down to 0.80 at 31) for the class stored with it; anything else abstains and
    lists the closest reference images. When the index holds faces, the faces of the image are
    searched too and each one whose closest indexed face reaches the same-person threshold is
    reported (evidence only: the same person appearing elsewhere says nothing about manipulation).
    Weight 2.0: a near-duplicate of a known fake is strong, checkable evidence.
    """

    name = "index_match"
    kind = "index"
    labels = ("ai_generated", "edited", "face_manipulated")
    weight = 2.0
    requires = ("pymilvus", "pdqhash")

    def run(self, sample: Sample) -> Finding:
        from verity.index import default_index_dir, default_uri, index_exists

        index_dir = self.options.get("index_dir") or default_index_dir()
        uri = self.options.get("uri") or default_uri()
        if not index_exists(index_dir, uri):
            return self.abstain("no similarity index is set up (see `verity index add`)")
        try:
            return self._run(sample, index_dir, uri)
        except Exception as e:  # noqa: BLE001 - a detector must never raise on a loaded sample
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            return self.abstain(f"the similarity index could not be searched ({msg})")

    def _run(self, sample: Sample, index_dir, uri) -> Finding:
        from verity.index.features import compute_features
        from verity.index.search import search
        from verity.index.store import FACES

        store = _store(index_dir, uri)
        # faces cost a detection and an embedding per image: only when the index has faces to match
        want_faces = bool(self.options.get("faces", True)) and store.count(FACES) > 0
        q = compute_features(sample, faces=want_faces)
        res = search(store, q, k=5, faces=want_faces)
        if not res.matches:
            return self.abstain("the similarity index is empty")

        def name(rec: dict, sha: str) -> str:
            p = rec.get("path") or ""
            return p.rsplit("/", 1)[-1] if p else sha[:12]

        def describe(m) -> str:
            bits = [m.record.get("label") or "unlabelled"]
            if m.pdq_distance is not None:
                bits.append(f"PDQ distance {m.pdq_distance}")
            if m.similarity is not None:
                bits.append(f"similarity {m.similarity:.2f}")
            return f"{name(m.record, m.sha256)} ({', '.join(bits)})"

        details = {"matches": [m.to_dict() for m in res.matches[:5]], "pdq_quality": res.pdq_quality}
        closest = "Closest reference images: " + "; ".join(describe(m) for m in res.matches[:3]) + "."
        face_ev = self._face_evidence(res, details, name) if want_faces else []
        fakes = [m for m in res.near_duplicates if m.record.get("label") in ("fake", "known_fake")]
        if fakes:
            m = min(fakes, key=lambda x: x.pdq_distance if x.pdq_distance is not None else 0)
            d = 0 if m.kind == "exact" else int(m.pdq_distance or 0)
            cls = m.record.get("fake_class") or "edited"
            src = f" from {m.record['source']}" if m.record.get("source") else ""
            how = f"is byte-for-byte the known fake {name(m.record, m.sha256)}{src} (PDQ distance 0)" \
                if m.kind == "exact" else \
                f"matches known fake {name(m.record, m.sha256)}{src} (PDQ distance {d} of 256 bits; near duplicates are within 31)"
            ev = [f"The image {how}, stored in the index as {m.record.get('label')} ({cls.replace('_', ' ')}).", closest]
            return self.finding(known_fake_score(d), ev + face_ev, labels=[cls], details=details)
        reals = [m for m in res.near_duplicates if m.record.get("label") == "real"]
        ev = []
        if reals:
            m = reals[0]
            ev.append(f"Near duplicate of the reference image {name(m.record, m.sha256)} labelled real (PDQ distance "
                      f"{m.pdq_distance}); compare the two to see what, if anything, changed.")
        ev.append(closest)
        return self.finding(None, ev + face_ev, details=details)

    @staticmethod
    def _face_evidence(res, details: dict, name) -> list[str]:
        """One sentence per query face whose closest indexed face reaches the same-person threshold."""
        from verity.face.identity import SAME_PERSON_THRESHOLD

        best: dict[int, object] = {}
        for f in res.faces:  # sorted by query face, then decreasing similarity
            best.setdefault(f.query_face, f)
        details["query_faces"] = res.n_query_faces
        details["faces"] = [f.to_dict() for f in best.values()]
        ev = []
        for i, f in sorted(best.items()):
            if not f.same_person:
                continue
            lab = f.record.get("label") or "unlabelled"
            if f.record.get("fake_class") and lab in ("fake", "known_fake"):
                lab += f", {f.record['fake_class'].replace('_', ' ')}"
            box = ", ".join(str(int(round(v))) for v in f.box) if f.box else ""
            ev.append(f"Face {i + 1} of the image matches face {f.face_index + 1} of the indexed image "
                      f"{name(f.record, f.image_sha)} ({lab}): cosine similarity {f.similarity:.3f}, at or above the "
                      f"same-person threshold {SAME_PERSON_THRESHOLD:.2f}" + (f" (indexed face box {box})." if box else "."))
        if res.n_query_faces and not ev:
            top = max((f.similarity for f in best.values()), default=None)
            ev.append(f"{res.n_query_faces} face(s) in the image; none matches an indexed face "
                      + (f"(closest similarity {top:.3f}, " if top is not None else "(")
                      + f"same-person threshold {SAME_PERSON_THRESHOLD:.2f}).")
        return ev
