"""`verity analyze` and the HTTP API on videos; images unaffected."""

from __future__ import annotations

import json

import pytest

from verity.cli.main import main

pytestmark = pytest.mark.xdist_group("video")  # one worker: the clips and their analyses are shared


def test_cli_video_json_and_html(splice_video, tmp_path, capsys):
    out = tmp_path / "r.html"
    rc = main(["analyze", "--json", "-q", "--html", str(out), str(splice_video)])
    assert rc == 0
    d = json.loads(capsys.readouterr().out.strip())
    assert d["verdict"] == "edited" and d["segments"][0]["start"] == 2.0
    text = out.read_text()
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="timeline"' in text
    assert text.count("data:image/jpeg;base64,") >= 8  # thumbnails and the poster frame
    assert "2.0-4.0 s" in text


def test_cli_fps_option_and_human_output(splice_video, capsys):
    rc = main(["analyze", "-q", "--fps", "1", str(splice_video)])
    out = capsys.readouterr().out
    assert rc == 0 and "6 frames sampled at 1/s" in out and "segment 2.0-4.0 s" in out
    assert main(["analyze", "--fps", "0", str(splice_video)]) == 2


def test_cli_broken_video_one_line(splice_video, tmp_path, capsys):
    bad = tmp_path / "cut.mp4"
    data = splice_video.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    rc = main(["analyze", str(bad)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 3
    assert len(err) == 1 and err[0].startswith(f"verity: {bad}: MP4 file is truncated: ") and "moov" in err[0]


def test_folder_with_images_videos_and_junk(splice_video, tmp_path, capsys):
    import shutil

    from verity.lab.edits import encode_jpeg, textured_image

    shutil.copy(splice_video, tmp_path / "clip.mp4")
    (tmp_path / "photo.jpg").write_bytes(encode_jpeg(textured_image(__import__("numpy").random.default_rng(0), (120, 160)), 90))
    (tmp_path / "notes.mp4").write_bytes(b"this is not a video at all" * 20)
    rc = main(["analyze", "--json", "-q", str(tmp_path)])
    docs = {d["path"].rsplit("/", 1)[-1]: d for d in map(json.loads, capsys.readouterr().out.strip().splitlines())}
    assert rc == 3
    assert docs["photo.jpg"]["verdict"] is not None and "video" not in docs["photo.jpg"]
    assert docs["photo.jpg"]["segments"] == [] and docs["photo.jpg"]["tracks"] == []
    assert docs["clip.mp4"]["video"]["container"] == "MP4"
    assert docs["notes.mp4"]["error"]["code"] == "not_an_image"


def test_api_accepts_video_and_serves_timeline(splice_video, make_client_video):
    c = make_client_video()
    r = c.post("/v1/analyses", files={"file": ("clip.mp4", splice_video.read_bytes(), "video/mp4")})
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["path"] is None and doc["segments"][0]["start"] == 2.0 and doc["video"]["container"] == "MP4"
    t = c.get(doc["urls"]["timeline"])
    assert t.status_code == 200 and t.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in t.content and b"data:image/jpeg;base64," in t.content
    assert c.get(doc["urls"]["image"]).status_code == 200
    rep = c.get(doc["urls"]["report"])
    assert rep.status_code == 200 and 'class="timeline"' in rep.text
    assert c.get(f"/v1/analyses/{doc['id']}/thumbnail.jpg").status_code == 200
    hist = c.get("/v1/analyses").json()
    assert hist["items"][0]["format"] == "MP4"


def test_api_video_errors_and_limits(splice_video, make_client_video):
    c = make_client_video(max_upload_bytes=64 * 1024)
    r = c.post("/v1/analyses", files={"file": ("big.mp4", splice_video.read_bytes(), "video/mp4")})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    c2 = make_client_video()
    data = splice_video.read_bytes()
    r = c2.post("/v1/analyses", files={"file": ("cut.mp4", data[: len(data) // 2], "video/mp4")})
    assert r.status_code == 422 and r.json()["error"]["code"] == "truncated"
    # an image without a timeline
    from verity.lab.edits import encode_jpeg, textured_image

    img = encode_jpeg(textured_image(__import__("numpy").random.default_rng(0), (64, 64)), 90)
    r = c2.post("/v1/analyses", files={"file": ("a.jpg", img, "image/jpeg")})
    assert r.status_code == 201 and "timeline" not in r.json()["urls"]
    assert c2.get(f"/v1/analyses/{r.json()['id']}/timeline.svg").status_code == 404


@pytest.fixture
def make_client_video(tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("multipart")
    from fastapi.testclient import TestClient

    from tests.api.stubs import StubPipeline
    from verity.api import create_app

    clients = []

    def make(**kw):
        kw.setdefault("data_dir", tmp_path / "data")
        kw.setdefault("pipeline_factory", StubPipeline)
        kw.setdefault("token", None)
        kw.setdefault("workers", 1)
        c = TestClient(create_app(**kw), raise_server_exceptions=False)
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def test_media_data_cut_short_is_analysed_up_to_the_cut(video_dir, capsys):
    from verity.video.decode import mp4_structure_problem
    from verity.video.synth import SynthSpec, write_video

    p = write_video(video_dir / "fs.mp4", SynthSpec(seconds=4, fps=25, size=(320, 180), seed=8), faststart=True)
    data = p.read_bytes()
    cut = video_dir / "fs_cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    assert mp4_structure_problem(cut.read_bytes()) is None  # the index is intact
    rc = main(["analyze", "--json", "-q", str(cut)])
    d = json.loads(capsys.readouterr().out)
    assert rc == 0 and 1 <= d["video"]["frames_sampled"] < 8
    assert any("frames stop at" in e for e in d["errors"])
