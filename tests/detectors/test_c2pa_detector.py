"""The c2pa detector: signed declarations, broken signatures, no manifest."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("c2pa")

from verity.core.io import load_sample  # noqa: E402
from verity.core.registry import create_detector  # noqa: E402
from verity.lab.edits import encode_jpeg, sd_png, textured_image  # noqa: E402
from verity.pipeline import Pipeline  # noqa: E402
from verity.provenance import c2pa as prov  # noqa: E402


@pytest.fixture(scope="module")
def creds():
    return prov.make_dev_credentials(common_name="verity test signer")


@pytest.fixture(scope="module")
def jpeg():
    return encode_jpeg(textured_image(np.random.default_rng(21), (192, 256)), 90)


def _sign(data, creds, **kw):
    return prov.sign(data, cert_chain=creds.chain_pem, private_key=creds.key_pem, claim_generator="verity-lab", **kw)


def _flip_scan_bytes(data: bytes) -> bytes:
    b = bytearray(data)
    i = b.rfind(b"\xff\xda") + 60
    n = 0
    while n < 16 and i < len(b) - 4:
        if b[i] not in (0x00, 0xFF) and b[i] ^ 0x21 not in (0x00, 0xFF):
            b[i] ^= 0x21
            n += 1
        i += 1
    return bytes(b)


def test_signed_generated_image_is_ai_generated(jpeg, creds):
    v = Pipeline(["c2pa"]).analyze(load_sample(_sign(jpeg, creds)))
    f = v.finding("c2pa")
    assert v.verdict == "ai_generated", v.probabilities
    assert f.score == pytest.approx(0.95) and f.labels == ["ai_generated"]
    assert "verity test signer" in f.evidence[0] and "'trainedAlgorithmicMedia'" in f.evidence[0]
    assert "not on any configured trust list" in f.evidence[0]


def test_trust_anchor_option(jpeg, creds):
    det = create_detector("c2pa", trust_anchors=creds.root_pem.decode())
    f = det.run(load_sample(_sign(jpeg, creds)))
    assert f.score == pytest.approx(0.98) and "chains to a configured trust anchor" in f.evidence[0]


def test_trust_anchor_environment(jpeg, creds, tmp_path, monkeypatch):
    pem = tmp_path / "anchors.pem"
    pem.write_bytes(creds.root_pem)
    monkeypatch.setenv("VERITY_C2PA_TRUST_ANCHORS", str(pem))
    f = create_detector("c2pa").run(load_sample(_sign(jpeg, creds)))
    assert f.details["validation_state"] == "Trusted"


def test_changed_pixels_are_edited(jpeg, creds):
    tampered = _flip_scan_bytes(_sign(jpeg, creds))
    v = Pipeline(["c2pa"]).analyze(load_sample(tampered))
    f = v.finding("c2pa")
    assert f.labels == ["edited"] and f.score >= 0.9
    assert "assertion.dataHash.mismatch" in f.evidence[0] and "verity test signer" in f.evidence[0]
    assert any("trainedAlgorithmicMedia" in e for e in f.evidence[1:])
    assert v.verdict == "edited"


def test_signed_capture_is_authenticity_evidence(jpeg, creds):
    det = create_detector("c2pa", trust_anchors=creds.root_pem)
    f = det.run(load_sample(_sign(jpeg, creds, digital_source_type="digitalCapture")))
    assert f.score < 0.2 and set(f.labels) == {"ai_generated", "edited"}
    untrusted = create_detector("c2pa").run(load_sample(_sign(jpeg, creds, digital_source_type="digitalCapture")))
    assert f.score < untrusted.score < 0.5


def test_generative_fill_is_edited(jpeg, creds):
    f = create_detector("c2pa").run(load_sample(_sign(jpeg, creds, digital_source_type="compositeWithTrainedAlgorithmicMedia")))
    assert f.labels == ["edited"] and f.score >= 0.9


def test_declared_edit(jpeg, creds):
    signed = _sign(jpeg, creds, digital_source_type="digitalCapture", actions=[{"action": "c2pa.edited"}])
    f = create_detector("c2pa").run(load_sample(signed))
    assert f.labels == ["edited"] and f.score == pytest.approx(0.7) and "c2pa.edited" in f.evidence[0]
    assert f.details["provenance"]["claim"] == "edits"


def test_invalid_but_not_tampered_is_not_called_valid(jpeg, creds):
    # c2pa.placed needs an ingredient: c2pa marks the manifest Invalid (assertion.action.ingredientMismatch)
    signed = _sign(jpeg, creds, digital_source_type="digitalCapture", actions=[{"action": "c2pa.placed"}])
    f = create_detector("c2pa").run(load_sample(signed))
    assert f.details["validation_state"] == "Invalid"
    assert f.score == 0.5 and f.labels == [] and "is invalid" in f.evidence[0] and "valid C2PA" not in f.evidence[0]
    assert f.details["provenance"]["claim"] == "invalid"


def test_png_without_manifest_abstains():
    img = textured_image(np.random.default_rng(22), (64, 64))
    f = create_detector("c2pa").run(load_sample(sd_png(img)))
    assert f.score is None and "No C2PA manifest" in f.evidence[0]


def test_signed_png(creds):
    img = textured_image(np.random.default_rng(23), (64, 96))
    f = create_detector("c2pa").run(load_sample(_sign(sd_png(img), creds)))
    assert f.score == pytest.approx(0.95)


def test_remote_manifest_is_not_fetched(jpeg, creds):
    import io

    import c2pa

    ctx = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}, "verify": {"verify_after_sign": False}})
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo("es256", creds.chain_pem, creds.key_pem, None))
    builder = c2pa.Builder({"claim_generator_info": [{"name": "t", "version": "1"}], "assertions": []}, context=ctx)
    builder.set_remote_url("https://example.invalid/manifest.c2pa")
    builder.set_no_embed()
    out = io.BytesIO()
    builder.sign(signer, "image/jpeg", io.BytesIO(jpeg), out)
    f = create_detector("c2pa").run(load_sample(out.getvalue()))
    assert f.score == 0.5 and f.labels == [] and "https://example.invalid/manifest.c2pa" in f.evidence[0]


def _resign_with_history(data, creds, **kw):
    """Sign ``data`` again, keeping its manifest as the parent ingredient (what `verity sign` does)."""
    return prov.sign(data, cert_chain=creds.chain_pem, private_key=creds.key_pem, claim_generator="editor",
                     digital_source_type=kw.pop("digital_source_type", None), parent=data, parent_title="parent", **kw)


def test_generated_then_cropped_is_still_ai_generated(jpeg, creds):
    cropped = _resign_with_history(_sign(jpeg, creds), creds, actions=[{"action": "c2pa.cropped"}])
    f = create_detector("c2pa").run(load_sample(cropped))
    assert f.details["provenance"]["claim"] == "ai_generated" and f.labels == ["ai_generated"]
    assert "made from an image whose own manifest declares 'trainedAlgorithmicMedia'" in f.evidence[0]
    v = Pipeline(["c2pa", "jpeg_double"]).analyze(load_sample(cropped))
    assert v.verdict == "ai_generated" and v.decided_by == "provenance"


def test_capture_then_processed_keeps_capture_claim(jpeg, creds):
    capture = _sign(jpeg, creds, digital_source_type="digitalCapture")
    resized = _resign_with_history(capture, creds, actions=[{"action": "c2pa.resized"}])
    det = create_detector("c2pa", trust_anchors=creds.root_pem)
    assert det.run(load_sample(resized)).details["provenance"]["claim"] == "capture_trusted"
    edited = _resign_with_history(capture, creds, actions=[{"action": "c2pa.edited"}])
    assert det.run(load_sample(edited)).details["provenance"]["claim"] == "edits"


@pytest.mark.parametrize("seed,strong", [(30, True), (35, False)])
def test_capture_manifest_lowers_but_does_not_hide_a_splice(creds, seed, strong):
    from verity.lab.edits import make_splice

    rng = np.random.default_rng(seed)
    a, b = textured_image(rng, (256, 320)), textured_image(rng, (256, 320))
    splice = make_splice(a, b, rng).data
    pipe = Pipeline(["c2pa", "jpeg_double", "jpeg_ghost", "copy_move", "noise_inconsistency"])
    pipe.detectors[0] = create_detector("c2pa", trust_anchors=creds.root_pem.decode())
    plain = pipe.analyze(load_sample(splice))
    signed = pipe.analyze(load_sample(_sign(splice, creds, digital_source_type="digitalCapture")))
    assert plain.verdict == "edited"
    assert signed.provenance["claim"] == "capture_trusted" and signed.decided_by == "fusion"
    assert signed.fused_probabilities == pytest.approx(plain.probabilities)
    assert signed.probabilities["edited"] < plain.probabilities["edited"]
    if strong:  # strong pixel evidence (edited > 0.975 alone) survives a trusted camera manifest
        assert plain.probabilities["edited"] > 0.975 and signed.verdict == "edited"
    else:  # moderate evidence (0.79 alone) is outweighed
        assert plain.probabilities["edited"] < 0.9 and signed.verdict != "edited"
