"""The index store: writes, searches, removal, the journal and crash safety (SIGKILL mid-batch)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.index._synthetic import synthetic_record

pytest.importorskip("pymilvus", reason="the [index] extra is not installed")
pytest.importorskip("milvus_lite", reason="the [index] extra is not installed")

from verity.index.store import IndexMissing, IndexStore, Journal, record_from_json, record_to_json  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = IndexStore(tmp_path_factory.mktemp("idx"), create=True)
    yield s
    s.close()


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(IndexMissing, match="no index"):
        IndexStore(tmp_path / "nothing")


def test_record_json_round_trip():
    r = synthetic_record(5, faces=2)
    back = record_from_json(json.loads(json.dumps(record_to_json(r))))
    assert back.sha256 == r.sha256 and back.label == r.label and back.path == r.path
    np.testing.assert_array_equal(back.pdq, r.pdq)
    np.testing.assert_array_equal(back.embedding, r.embedding)
    assert len(back.faces) == 2 and np.array_equal(back.faces[1].embedding, r.faces[1].embedding)


def test_bad_labels_are_refused():
    with pytest.raises(ValueError):
        synthetic_record(1, label="maybe")


def test_add_search_remove(store):
    recs = [synthetic_record(i) for i in range(30)]
    assert store.add(recs) == [r.sha256 for r in recs]
    assert store.count() == 30
    target = recs[7]
    hits = store.search_pdq(target.pdq, 3)
    assert hits[0] == (target.sha256, 0) and hits[1][1] > 60
    emb = store.search_embedding(target.embedding, 2)
    assert emb[0][0] == target.sha256 and emb[0][1] == pytest.approx(1.0, abs=1e-4)
    with_faces = [r for r in recs if r.faces]
    f = store.search_faces(with_faces[0].faces[0].embedding, 1)[0]
    assert f["image_sha"] == with_faces[0].sha256 and f["face_index"] == 0 and f["similarity"] > 0.999
    assert store.fetch([target.sha256])[target.sha256]["n_faces"] == len(target.faces)
    assert store.find_by_path(target.path) == [target.sha256]
    # idempotent: adding again changes nothing
    store.add([synthetic_record(7)])
    assert store.count() == 30
    assert store.remove(target.sha256) is True
    assert store.remove(target.sha256) is False
    assert store.contains([target.sha256, recs[8].sha256]) == {recs[8].sha256}
    assert store.count("verity_faces") == sum(len(r.faces) for r in recs if r is not target)
    st = store.stats()
    assert st["images"] == 29 and st["by_label"] == {"real": 29}


def test_pdq_table_upsert_remove_save(tmp_path):
    from verity.index.pdq import pack
    from verity.index.store import PdqTable

    bits = np.random.default_rng(1).integers(0, 2, (6, 256)).astype(np.uint8)
    shas = [f"{i:064x}" for i in range(6)]
    t = PdqTable()
    t.extend(shas[:3], pack(bits[:3]))
    t.upsert(shas[1], pack(bits[4]))  # overwrites a row not yet packed
    t.extend(shas[3:], pack(bits[3:]))
    t.remove(shas[0])
    t.upsert(shas[2], pack(bits[5]))  # overwrites a packed row
    assert len(t) == 5
    assert {s for s, d in t.search(pack(bits[4]), 5) if d == 0} == {shas[1], shas[4]}
    assert shas[0] not in [s for s, _ in t.search(pack(bits[0]), 6)]
    t.save(tmp_path / "t.bin")
    u = PdqTable.load(tmp_path / "t.bin")
    assert len(u) == 5 and u.search(pack(bits[5]), 1) == [(shas[2], 0)] and shas[0] not in u.pos


def test_in_memory_pdq_scan_equals_the_milvus_search(tmp_path):
    from verity.index.pdq import hamming
    from verity.index.store import PDQ_TABLE, PdqTable

    recs = [synthetic_record(i) for i in range(200, 260)]
    with IndexStore(tmp_path, create=True) as s:
        s.add(recs)
        assert s._pdq is not None and len(s._pdq) == 60
        assert s._metric == {"verity_images": "IP", "verity_faces": "IP"}
    assert (tmp_path / PDQ_TABLE).is_file()
    rng = np.random.default_rng(7)
    queries = [recs[3].pdq, rng.integers(0, 2, 256).astype(np.uint8)]
    q = recs[9].pdq.copy()
    q[:20] ^= 1
    queries.append(q)
    fast = IndexStore(tmp_path, read_only=True)
    slow = IndexStore(tmp_path, read_only=True, pdq_scan="milvus")
    try:
        for bits in queries:
            a, b = fast.search_pdq(bits, 8), slow.search_pdq(bits, 8)
            assert [d for _, d in a] == [d for _, d in b]  # same distances (ties may be ordered differently)
            by_sha = {r.sha256: r for r in recs}
            assert all(hamming(by_sha[sha].pdq, bits) == d for sha, d in a)
        assert fast._pdq is not None and slow._pdq is None
        assert fast.search_pdq(q, 1) == [(recs[9].sha256, 20)]
    finally:
        fast.close()
        slow.close()
    # a removal reaches the table and its file
    with IndexStore(tmp_path) as s:
        assert s.remove(recs[3].sha256)
        assert s.search_pdq(recs[3].pdq, 1)[0][1] > 0
    t = PdqTable.load(tmp_path / PDQ_TABLE)
    assert len(t) == 59 and recs[3].sha256 not in t.pos


def test_pdq_table_that_does_not_match_is_not_used(tmp_path):
    from verity.index.store import PDQ_TABLE, PdqTable

    recs = [synthetic_record(i) for i in range(300, 320)]
    with IndexStore(tmp_path, create=True) as s:
        s.add(recs)
    good = (tmp_path / PDQ_TABLE).read_bytes()
    # damaged file: read-only stores fall back to the Milvus search, and still find the record
    (tmp_path / PDQ_TABLE).write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    assert PdqTable.load(tmp_path / PDQ_TABLE) is None
    with IndexStore(tmp_path, read_only=True) as r:
        assert r.search_pdq(recs[5].pdq, 1) == [(recs[5].sha256, 0)] and r._pdq is None
    # a table of another state (one record short): not used; a writer rebuilds it from Milvus
    (tmp_path / PDQ_TABLE).write_bytes(good)
    t = PdqTable.load(tmp_path / PDQ_TABLE)
    t.remove(recs[0].sha256)
    t.save(tmp_path / PDQ_TABLE)
    with IndexStore(tmp_path, read_only=True) as r:
        assert r.search_pdq(recs[0].pdq, 1) == [(recs[0].sha256, 0)] and r._pdq is None
    (tmp_path / PDQ_TABLE).unlink()  # an index from before the table file
    with IndexStore(tmp_path) as w:
        assert w._pdq is not None and len(w._pdq) == 20
        assert w.search_pdq(recs[0].pdq, 1) == [(recs[0].sha256, 0)]
    assert len(PdqTable.load(tmp_path / PDQ_TABLE)) == 20


def test_journal_drops_a_torn_tail(tmp_path):
    j = Journal(tmp_path / "j.log")
    j.append([{"op": "remove", "sha256": "a" * 64}, {"op": "remove", "sha256": "b" * 64}])
    with open(tmp_path / "j.log", "ab") as fh:
        fh.write(b'1234abcd {"op": "add", "rec')  # a write cut by a crash
    ops, bad = j.read()
    assert [o["sha256"][0] for o in ops] == ["a", "b"] and bad == 1
    raw = (tmp_path / "j.log").read_bytes().replace(b'"a', b'"c', 1)  # flipped content fails its CRC
    (tmp_path / "j.log").write_bytes(raw)
    ops, bad = j.read()
    assert [o["sha256"][0] for o in ops] == ["b"] and bad == 2
    j.truncate()
    assert j.read() == ([], 0)
    j.close()


def test_journal_replay_restores_what_milvus_never_got(tmp_path):
    s = IndexStore(tmp_path, create=True)
    s.add([synthetic_record(100)])
    s.close()
    # a record that reached the journal but not Milvus (process killed between the two writes),
    # and a removal of the first record
    j = Journal(tmp_path / "journal.log")
    j.append([{"op": "add", "record": record_to_json(synthetic_record(101))},
              {"op": "remove", "sha256": synthetic_record(100).sha256}])
    j.close()
    s = IndexStore(tmp_path)
    try:
        assert s.replayed == 2
        assert s.contains([synthetic_record(100).sha256, synthetic_record(101).sha256]) == {synthetic_record(101).sha256}
        assert (tmp_path / "journal.log").stat().st_size == 0  # checkpointed after the replay
    finally:
        s.close()


def test_second_writer_is_refused(store):
    from verity.index.store import IndexBusy

    with pytest.raises(IndexBusy):
        IndexStore(store.index_dir)


def _check_all(s: IndexStore, acked: list[str]) -> None:
    from tests.index._synthetic import synthetic_record as rec
    from verity.index.pdq import to_hex

    assert s.contains(acked) == set(acked), "an acknowledged record was lost"
    rows = s.client.query("verity_images", filter='sha256 != ""',
                          output_fields=["sha256", "path", "pdq_hex", "n_faces", "label"], limit=16384)
    faces = s.client.query("verity_faces", filter='face_id != ""', output_fields=["image_sha"], limit=16384)
    per_image: dict[str, int] = {}
    for f in faces:
        per_image[f["image_sha"]] = per_image.get(f["image_sha"], 0) + 1
    for row in rows:  # every stored record is whole and exactly what was written
        i = int(row["path"].rsplit("/", 1)[1].split(".")[0])
        want = rec(i)
        assert row["sha256"] == want.sha256 and row["pdq_hex"] == to_hex(want.pdq) and row["label"] == "real"
        assert row["n_faces"] == len(want.faces) == per_image.get(want.sha256, 0)
    for sha in acked[:: max(1, len(acked) // 5)]:
        row = next(r for r in rows if r["sha256"] == sha)
        want = rec(int(row["path"].rsplit("/", 1)[1].split(".")[0]))
        hit = s.search_embedding(want.embedding, 1)[0]
        assert hit[0] == sha and hit[1] > 0.9999
        assert s.search_pdq(want.pdq, 1) == [(sha, 0)]
    # the in-memory PDQ table survived the kills too (journal replay, or rebuilt from Milvus)
    assert s._pdq is not None and len(s._pdq) == len(rows)


def _run_child_and_kill(index_dir: Path, start: int, kill_after: int) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.Popen([sys.executable, "-m", "tests.index._crash_child", str(index_dir), str(start)],
                         cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    acked: list[str] = []
    deadline = time.time() + 240
    try:
        assert p.stdout.readline().strip() == "ready"
        while len(acked) < kill_after and time.time() < deadline:
            line = p.stdout.readline().strip()
            if not line:
                break
            acked.append(line)
        os.kill(p.pid, signal.SIGKILL)  # mid-batch: the child writes continuously
        for line in p.stdout:  # acknowledgements already printed before the kill count too
            if len(line.strip()) == 64:
                acked.append(line.strip())
    finally:
        p.kill()
        p.wait(30)
    assert len(acked) >= kill_after
    return acked


@pytest.mark.slow
def test_sigkill_mid_batch_loses_no_acknowledged_write(tmp_path):
    acked = _run_child_and_kill(tmp_path, 0, kill_after=23)   # between checkpoints (every 40)
    acked += _run_child_and_kill(tmp_path, 1000, kill_after=50)  # after a checkpoint
    s = IndexStore(tmp_path)
    try:
        _check_all(s, acked)
    finally:
        s.close()
