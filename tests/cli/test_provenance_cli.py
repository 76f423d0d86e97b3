"""`verity verify`, `verity sign`, `verity certs init`: states, tampering, stripping, formats, exit codes."""

from __future__ import annotations

import functools
import http.server
import io
import json
import shutil
import subprocess
import threading

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("c2pa")

from verity.cli.main import main  # noqa: E402
from verity.lab.edits import encode_jpeg, textured_image  # noqa: E402


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    assert main(["certs", "init", str(d / "ca")]) == 0
    return d / "ca"


def _image(fmt: str, shape=(96, 128)) -> bytes:
    img = textured_image(np.random.default_rng(5), shape)
    if fmt == "JPEG":
        return encode_jpeg(img, 90)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, **({"quality": 90} if fmt == "WEBP" else {}))
    return buf.getvalue()


def _mp4(tmp_path) -> bytes:
    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg is not installed (needed to make a tiny MP4)")
    out = tmp_path / "tiny.mp4"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=64x48:rate=10", "-t", "0.5", "-pix_fmt", "yuv420p", str(out)],
                   check=True, timeout=60)  # fmt: skip
    return out.read_bytes()


def _flip_content_byte(data: bytes, fmt: str) -> bytes:
    """Flip one bit of the image (or video) data itself, away from the manifest."""
    b = bytearray(data)
    marker = {"JPEG": b"\xff\xda", "PNG": b"IDAT", "WEBP": b"VP8", "MP4": b"mdat"}[fmt]
    i = (data.rfind(marker) if fmt == "JPEG" else data.find(marker)) + 30
    assert 30 <= i < len(b)
    b[i] ^= 0x01
    return bytes(b)


def _verify(capsys, *args) -> tuple[int, list[dict], str]:
    rc = main(["verify", "--json", *map(str, args)])
    cap = capsys.readouterr()
    return rc, [json.loads(x) for x in cap.out.strip().splitlines() if x.strip()], cap.err


def _sign(pki, src, out, *extra) -> int:
    return main(["sign", str(src), "--cert", str(pki / "chain.pem"), "--key", str(pki / "key.pem"), "--out", str(out),
                 *map(str, extra)])  # fmt: skip


def test_certs_init(pki, tmp_path, capsys):
    from cryptography import x509

    root, inter, leaf_and_inter = (x509.load_pem_x509_certificates((pki / n).read_bytes())
                                   for n in ("root.pem", "intermediate.pem", "chain.pem"))  # fmt: skip
    leaf, inter2 = leaf_and_inter
    assert inter2 == inter[0] and leaf.issuer == inter[0].subject and inter[0].issuer == root[0].subject
    assert (pki / "key.pem").stat().st_mode & 0o077 == 0
    capsys.readouterr()
    assert main(["certs", "init", str(pki)]) == 2  # never overwrites silently
    assert "already exist" in capsys.readouterr().err
    d = tmp_path / "again"
    assert main(["certs", "init", str(d)]) == 0 and main(["certs", "init", str(d), "--force"]) == 0


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "MP4"])
def test_sign_verify_tamper_per_format(fmt, pki, tmp_path, capsys):
    data = _mp4(tmp_path) if fmt == "MP4" else _image(fmt)
    src = tmp_path / f"in.{fmt.lower()}"
    src.write_bytes(data)
    out = tmp_path / f"signed.{fmt.lower()}"
    assert _sign(pki, src, out, "--source-type", "digitalCapture") == 0
    capsys.readouterr()

    rc, [d], _ = _verify(capsys, out, "--trust-anchors", pki / "root.pem")
    assert rc == 0 and d["state"] == "Trusted" and d["content_hash"] == "match" and d["format"] == fmt
    assert d["signer"]["name"] == "verity test signer" and d["digital_source_types"][0]["term"] == "digitalCapture"
    rc, [d], _ = _verify(capsys, out)
    assert rc == 0 and d["state"] == "Valid"
    assert [c["code"] for c in d["codes"]["failure"]] == ["signingCredential.untrusted"]
    assert "self-asserted" in d["codes"]["failure"][0]["meaning"]

    bad = tmp_path / f"flipped.{fmt.lower()}"
    bad.write_bytes(_flip_content_byte(out.read_bytes(), fmt))
    rc, [d], _ = _verify(capsys, bad, "--trust-anchors", pki / "root.pem")
    assert rc == 0 and d["state"] == "Invalid" and d["content_hash"] == "mismatch"
    code = "assertion.bmffHash.mismatch" if fmt == "MP4" else "assertion.dataHash.mismatch"
    assert code in [c["code"] for c in d["codes"]["failure"]]
    main(["verify", str(bad)])
    text = capsys.readouterr().out
    assert "INVALID" in text and "DOES NOT match its signed hash" in text


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_stripped_by_reencoding_has_no_credentials(fmt, pki, tmp_path, capsys):
    src = tmp_path / "in"
    src.write_bytes(_image(fmt))
    out = tmp_path / "signed"
    assert _sign(pki, src, out, "--ai-generated") == 0
    stripped = tmp_path / "stripped"
    Image.open(out).save(stripped, format=fmt)  # PIL writes pixels only: the manifest is gone
    capsys.readouterr()
    rc, [d], err = _verify(capsys, stripped)
    assert rc == 0 and err == "" and d["credentials"] == "none" and d["state"] is None
    assert main(["verify", str(stripped)]) == 0
    assert "No Content Credentials found" in capsys.readouterr().out


def test_exit_codes_and_unreadable_files(pki, tmp_path, capsys):
    good = tmp_path / "good.jpg"
    assert _sign(pki, _write(tmp_path / "in.jpg", _image("JPEG")), good, "--ai-generated") == 0
    text = _write(tmp_path / "notes.txt", b"just some text, not an image")
    empty = _write(tmp_path / "empty.jpg", b"")
    trunc = _write(tmp_path / "trunc.jpg", _image("JPEG")[:40])
    capsys.readouterr()
    rc, docs, err = _verify(capsys, good, text, tmp_path / "missing.jpg", empty, trunc)
    assert rc == 3
    assert docs[0]["state"] == "Valid" and all(d["error"]["code"] for d in docs[1:])
    lines = err.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("verity verify: ") for line in lines) and "Traceback" not in err
    # --require: exit 5 when a file falls short
    assert main(["verify", str(good), "--require", "valid"]) == 0
    assert main(["verify", str(good), "--require", "trusted"]) == 5
    assert main(["verify", str(good), "--require", "trusted", "--trust-anchors", str(pki / "root.pem")]) == 0
    capsys.readouterr()
    # unusable trust anchors: usage error
    assert main(["verify", str(good), "--trust-anchors", str(tmp_path / "nope.pem")]) == 2
    assert main(["verify", str(good), "--trust-anchors", str(text)]) == 2
    assert main(["verify", str(tmp_path / "empty-folder-that-is-missing")]) == 3


def _write(p, data):
    p.write_bytes(data)
    return p


def test_history_tree_and_parent(pki, tmp_path, capsys):
    src = _write(tmp_path / "photo.jpg", _image("JPEG"))
    cap, crop, gen = (tmp_path / n for n in ("cap.jpg", "crop.jpg", "gen.jpg"))
    assert _sign(pki, src, cap, "--source-type", "digitalCapture") == 0
    assert _sign(pki, cap, crop, "--action", "cropped", "--action", "c2pa.color_adjustments") == 0
    assert _sign(pki, crop, gen, "--ai-generated") == 0  # e.g. an img2img edit of the crop
    capsys.readouterr()
    rc, [d], _ = _verify(capsys, gen, "--trust-anchors", pki / "root.pem")
    assert rc == 0 and d["state"] == "Trusted"
    assert [a["action"] for a in d["actions"]] == ["c2pa.opened", "c2pa.edited"]
    h = d["history"]
    p1 = h["ingredients"][0]
    p2 = p1["ingredients"][0]
    assert p1["title"] == "crop.jpg" and p1["relationship"] == "parentOf" and p1["state"] == "Trusted"
    assert [a["action"] for a in p1["actions"]] == ["c2pa.opened", "c2pa.cropped", "c2pa.color_adjustments"]
    assert p2["title"] == "cap.jpg" and p2["digital_source_types"] == ["digitalCapture"] and p2["ingredients"] == []
    main(["verify", str(gen)])
    text = capsys.readouterr().out
    assert 'parentOf "crop.jpg"' in text and 'parentOf "cap.jpg"' in text

    # an explicit --parent becomes the ingredient of an unsigned input
    edited = _write(tmp_path / "edited.jpg", _image("JPEG", (80, 96)))
    out = tmp_path / "edited_signed.jpg"
    assert _sign(pki, edited, out, "--parent", cap, "--action", "edited") == 0
    capsys.readouterr()
    _, [d], _ = _verify(capsys, out)
    assert d["history"]["ingredients"][0]["title"] == "cap.jpg"
    assert d["history"]["ingredients"][0]["digital_source_types"] == ["digitalCapture"]


def test_sign_without_declaration_and_size(pki, tmp_path, capsys):
    src = _write(tmp_path / "p.jpg", _image("JPEG", (256, 256)))
    out = tmp_path / "s.jpg"
    assert main(["sign", str(src), "--cert", str(pki / "chain.pem"), "--key", str(pki / "key.pem"), "--out", str(out),
                 "--json"]) == 0  # fmt: skip
    s = json.loads(capsys.readouterr().out)
    assert s["digital_source_type"] is None and s["actions"] == ["c2pa.opened"]
    assert 0 < s["growth_bytes"] < 8000  # no thumbnail: the manifest and the certificate chain only
    thumb = tmp_path / "t.jpg"
    assert _sign(pki, src, thumb, "--thumbnail", "--ai-generated") == 0
    assert thumb.stat().st_size > out.stat().st_size
    capsys.readouterr()
    _, [d], _ = _verify(capsys, out)
    assert d["state"] == "Valid" and d["digital_source_types"] == []
    assert d["history"]["ingredients"][0]["manifest"] is None  # the unsigned input, recorded as parent


def test_sign_errors(pki, tmp_path, capsys):
    src = _write(tmp_path / "p.jpg", _image("JPEG"))
    out = tmp_path / "o.jpg"
    other = tmp_path / "other"
    assert main(["certs", "init", str(other)]) == 0
    assert main(["sign", str(src), "--cert", str(pki / "chain.pem"), "--key", str(other / "key.pem"),
                 "--out", str(out)]) == 2  # fmt: skip
    assert not out.exists()
    assert _sign(pki, src, out, "--action", "frobnicated") == 2
    assert _sign(pki, src, out, "--action", "c2pa.placed") == 2
    assert _sign(pki, src, out, "--source-type", "madeUp") == 2
    bmp = tmp_path / "x.bmp"
    Image.new("RGB", (8, 8)).save(bmp)
    assert _sign(pki, bmp, out) == 3
    assert _sign(pki, tmp_path / "missing.jpg", out) == 3
    assert _sign(pki, src, out) == 0
    assert _sign(pki, src, out) == 2  # exists
    assert _sign(pki, src, out, "--force") == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "private key does not belong" in err
    with pytest.raises(SystemExit) as e:
        main(["sign", str(src), "--cert", "c", "--key", "k", "--out", "o", "--ai-generated", "--source-type", "x"])
    assert e.value.code == 2


class _Quiet(http.server.SimpleHTTPRequestHandler):
    hits: list[str] = []

    def log_message(self, *a):  # noqa: D102
        pass

    def do_GET(self):  # noqa: N802
        _Quiet.hits.append(self.path)
        super().do_GET()


def test_remote_manifest_reported_not_fetched_unless_asked(pki, tmp_path, capsys):
    import c2pa

    srv_dir = tmp_path / "srv"
    srv_dir.mkdir()
    handler = functools.partial(_Quiet, directory=str(srv_dir))
    try:
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    except OSError as e:
        pytest.skip(f"cannot open a local HTTP server: {e}")
    url = f"http://127.0.0.1:{srv.server_address[1]}/m.c2pa"
    ctx = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}, "verify": {"verify_after_sign": False}})
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo("es256", (pki / "chain.pem").read_bytes(),
                                                       (pki / "key.pem").read_bytes(), None))  # fmt: skip
    manifest = {"claim_generator_info": [{"name": "t", "version": "1"}], "assertions": [{"label": "c2pa.actions",
                "data": {"actions": [{"action": "c2pa.created", "digitalSourceType":
                         "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"}]}}]}  # fmt: skip
    out = io.BytesIO()
    with c2pa.Builder(manifest, context=ctx) as b:
        b.set_no_embed()
        b.set_remote_url(url)
        store = b.sign(signer, "image/jpeg", io.BytesIO(_image("JPEG")), out)
    (srv_dir / "m.c2pa").write_bytes(store)
    f = _write(tmp_path / "remote.jpg", out.getvalue())
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        _Quiet.hits.clear()
        rc, [d], _ = _verify(capsys, f)
        assert rc == 0 and d["credentials"] == "remote" and d["remote_url"] == url and d["state"] is None
        assert "not fetched" in d["summary"] and _Quiet.hits == []
        rc, [d], _ = _verify(capsys, f, "--allow-remote", "--trust-anchors", pki / "root.pem")
        assert rc == 0 and _Quiet.hits == ["/m.c2pa"]
        assert d["credentials"] == "found" and d["state"] == "Trusted" and d["embedded"] is False
    finally:
        srv.shutdown()
        srv.server_close()


def test_analyze_signed_ai_image_is_decided_by_provenance(pki, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("VERITY_C2PA_TRUST_ANCHORS", raising=False)
    src = _write(tmp_path / "camera_like.jpg", _image("JPEG", (192, 256)))
    out = tmp_path / "gen.jpg"
    assert _sign(pki, src, out, "--ai-generated") == 0
    capsys.readouterr()
    assert main(["analyze", "--json", str(out), str(src)]) == 0
    signed, plain = (json.loads(x) for x in capsys.readouterr().out.strip().splitlines())
    assert signed["verdict"] == "ai_generated" and signed["decided_by"] == "provenance"
    assert signed["probabilities"]["ai_generated"] == 1.0 and signed["provenance"]["claim"] == "ai_generated"
    assert "decided by provenance" in signed["explanation"] and "verity test signer" in signed["explanation"]
    # the pixels are the same image: the detectors alone do not call it AI-generated
    assert signed["fused_probabilities"]["ai_generated"] < 0.71
    assert plain["decided_by"] == "fusion" and plain["provenance"] is None and plain["verdict"] != "ai_generated"
    assert main(["analyze", str(out), "--trust-anchors", str(pki / "root.pem")]) == 0
    text = capsys.readouterr().out
    assert "AI_GENERATED  (certainty: provenance" in text and "chains to a configured trust anchor" in text
