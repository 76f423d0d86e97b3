"""exif_camera, edit_history, jpeg_qtables and exif_thumbnail on camera-like JPEGs."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from verity.core.io import load_sample
from verity.core.registry import create_detector
from verity.lab.edits import camera_exif, encode_jpeg, textured_image
from verity.ops.quant import ijg_table
from verity.ops.regions import heatmap_mask
from verity.pipeline import Pipeline
from verity.provenance.metadata import add_exif_thumbnail

METADATA = ["generator_metadata", "digital_source_type", "exif_camera", "edit_history", "exif_thumbnail", "jpeg_qtables"]


@pytest.fixture(scope="module")
def img():
    return textured_image(np.random.default_rng(11), (480, 640))


def _thumb(img) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).resize((160, 120), Image.LANCZOS).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def _camera_tables(q: int = 92) -> list[list[int]]:
    """Tables a camera might use: close to IJG but not equal."""
    luma, chroma = ijg_table(q).copy(), ijg_table(q, chroma=True).copy()
    luma[[1, 9, 20]] += 1
    chroma[[2, 30]] += 1
    return [luma.tolist(), chroma.tolist()]


def _camera_jpeg(img, exif: bytes, qtables=None, quality=92) -> bytes:
    buf = io.BytesIO()
    kw = {"qtables": qtables} if qtables else {"quality": quality}
    Image.fromarray(img).save(buf, format="JPEG", exif=exif, subsampling=2, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("q", [85, 92, 95])
def test_camera_jpeg_is_not_scored_edited(img, q):
    """Issue-2 acceptance: an unedited JPEG with camera EXIF is not edited for the metadata group."""
    v = Pipeline(METADATA).analyze(load_sample(encode_jpeg(img, q, exif=camera_exif())))
    scored = [f for f in v.findings if f.score is not None and "edited" in f.labels]
    assert scored, "some metadata detector must speak about editing"
    assert all(f.score < 0.5 for f in scored), [(f.detector, f.score) for f in scored]
    assert v.verdict == "authentic", v.probabilities
    assert v.finding("exif_camera").score < 0.5


def test_exif_camera_sentence(img):
    f = create_detector("exif_camera").run(load_sample(encode_jpeg(img, 90, exif=camera_exif())))
    assert f.score == pytest.approx(0.3)
    assert "'Canon EOS 5D'" in f.evidence[0] and "1/125 s, f/5.6, ISO 200, 50 mm" in f.evidence[0]


def test_exif_camera_without_exif_is_weak(img):
    f = create_detector("exif_camera").run(load_sample(encode_jpeg(img, 90)))
    assert 0.5 < f.score <= 0.56


def test_exif_camera_implausible_values(img):
    ex = Image.Exif()
    ex[0x010F], ex[0x0110] = "Canon", "Canon EOS 5D"
    ex.get_ifd(0x8769)[0x829D] = (0, 10)  # f/0
    ex.get_ifd(0x8769)[0x9003] = "2091:01:01 00:00:00"
    f = create_detector("exif_camera").run(load_sample(encode_jpeg(img, 90, exif=ex.tobytes())))
    assert f.score == 0.5 and "implausible" in f.evidence[0]


def test_editor_software_is_weak_edited_evidence(img):
    ex = Image.Exif()
    ex.load(camera_exif())
    ex[0x0131] = "Adobe Photoshop 24.0 (Windows)"
    ex[0x0132] = "2019:06:05 10:20:30"  # modified four days after capture
    v = Pipeline(METADATA).analyze(load_sample(encode_jpeg(img, 90, exif=ex.tobytes())))
    f = v.finding("edit_history")
    assert 0.6 < f.score <= 0.75
    assert any("Adobe Photoshop" in e for e in f.evidence) and any("4 days after" in e for e in f.evidence)
    assert v.verdict != "edited"  # processed is not edited: metadata alone must not decide


def test_document_ancestors(img):
    xmp = (
        "<x:xmpmeta><rdf:RDF><rdf:Description><photoshop:DocumentAncestors><rdf:Bag>"
        "<rdf:li>xmp.did:aaa</rdf:li><rdf:li>xmp.did:bbb</rdf:li><rdf:li>xmp.did:ccc</rdf:li>"
        "</rdf:Bag></photoshop:DocumentAncestors></rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", xmp=xmp.encode())
    f = create_detector("edit_history").run(load_sample(buf.getvalue()))
    assert f.score > 0.6 and "3 other document(s)" in f.evidence[0]


def test_exif_size_mismatch(img):
    ex = Image.Exif()
    ex.load(camera_exif())
    ex.get_ifd(0x8769)[0xA002], ex.get_ifd(0x8769)[0xA003] = 4368, 2912
    f = create_detector("edit_history").run(load_sample(encode_jpeg(img, 90, exif=ex.tobytes())))
    assert f.score > 0.5 and "4368x2912" in f.evidence[0]


def test_jpeg_qtables(img):
    det = create_detector("jpeg_qtables")
    std = det.run(load_sample(encode_jpeg(img, 90, exif=camera_exif())))
    assert std.score == 0.5 and std.labels == [] and "quality 90" in std.evidence[0]
    cam = det.run(load_sample(_camera_jpeg(img, camera_exif(), qtables=_camera_tables())))
    assert cam.score == pytest.approx(0.4) and "edited" in cam.labels and "'Canon'" in cam.evidence[0]
    nocam = det.run(load_sample(_camera_jpeg(img, b"", qtables=_camera_tables())))
    assert nocam.score == 0.5 and nocam.labels == []
    assert not det.accepts(load_sample(_png_bytes(img)))


def _png_bytes(img) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def test_thumbnail_match_is_weak_authenticity(img):
    ex = add_exif_thumbnail(camera_exif(), _thumb(img))
    f = create_detector("exif_thumbnail").run(load_sample(_camera_jpeg(img, ex, qtables=_camera_tables())))
    assert f.score == pytest.approx(0.4) and "matches" in f.evidence[0]


def test_thumbnail_reveals_a_splice(img):
    ex = add_exif_thumbnail(camera_exif(), _thumb(img))
    donor = textured_image(np.random.default_rng(12), (480, 640))
    edited = img.copy()
    x0, y0, x1, y1 = 100, 250, 300, 420
    edited[y0:y1, x0:x1] = donor[y0:y1, x0:x1]
    v = Pipeline(METADATA).analyze(load_sample(_camera_jpeg(edited, ex, qtables=_camera_tables())))
    f = v.finding("exif_thumbnail")
    assert f.score >= 0.75 and "x=" in f.evidence[0]
    mask = heatmap_mask(f.heatmap, (480, 640), 0.5)
    assert mask[y0:y1, x0:x1].mean() > 0.3 and mask[:200, 350:].mean() < 0.02
    assert v.verdict == "edited", v.probabilities


def test_thumbnail_of_another_picture(img):
    other = textured_image(np.random.default_rng(13), (480, 640))
    ex = add_exif_thumbnail(camera_exif(), _thumb(other))
    f = create_detector("exif_thumbnail").run(load_sample(encode_jpeg(img, 90, exif=ex)))
    assert f.score == pytest.approx(0.95) and "different picture" in f.evidence[0]


def test_thumbnail_shows_the_uncropped_picture(img):
    ex = add_exif_thumbnail(camera_exif(), _thumb(img))
    f = create_detector("exif_thumbnail").run(load_sample(encode_jpeg(img[120:360, 160:480], 90, exif=ex)))
    assert f.score == pytest.approx(0.75) and "crop" in f.evidence[0]


def test_no_thumbnail_abstains(img):
    assert create_detector("exif_thumbnail").run(load_sample(encode_jpeg(img, 90, exif=camera_exif()))).score is None
