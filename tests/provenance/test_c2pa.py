"""verity.provenance.c2pa: offline signing and validation with c2pa-python."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("c2pa")

from verity.provenance import c2pa as prov  # noqa: E402


@pytest.fixture(scope="module")
def creds():
    return prov.make_dev_credentials()


def _image(fmt: str, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def _flip_scan_bytes(data: bytes) -> bytes:
    """Change entropy-coded bytes after the last JPEG start-of-scan (pixels change, container intact)."""
    b = bytearray(data)
    i = b.rfind(b"\xff\xda") + 40
    n = 0
    while n < 12 and i < len(b) - 4:
        if b[i] not in (0x00, 0xFF) and b[i] ^ 0x11 not in (0x00, 0xFF):
            b[i] ^= 0x11
            n += 1
        i += 1
    return bytes(b)


def test_dev_credentials_profile(creds):
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    certs = x509.load_pem_x509_certificates(creds.chain_pem)
    leaf, root = certs
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert leaf.issuer == root.subject
    assert x509.load_pem_x509_certificate(creds.root_pem) == root


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_sign_and_read_round_trip(fmt, creds):
    data = _image(fmt)
    signed = prov.sign(data, cert_chain=creds.chain_pem, private_key=creds.key_pem, claim_generator="verity-test",
                       claim_generator_version="9", title="gen")  # fmt: skip
    assert signed != data and prov.has_c2pa_marker(signed)
    info = prov.read(signed, fmt)
    assert info.present and info.validation_state == "Valid" and info.signature_ok
    assert info.digital_source_types == ["trainedAlgorithmicMedia"]
    assert info.signer == "verity development signer"
    assert info.claim_generator == "verity-test 9" and info.title == "gen"
    assert [a.action for a in info.actions] == ["c2pa.created"]
    trusted = prov.read(signed, fmt, trust_anchors=creds.root_pem)
    assert trusted.validation_state == "Trusted" and trusted.trusted


def test_untrusted_root_is_not_trusted(creds):
    signed = prov.sign(_image("JPEG"), cert_chain=creds.chain_pem, private_key=creds.key_pem)
    other = prov.make_dev_credentials()
    info = prov.read(signed, "JPEG", trust_anchors=other.root_pem)
    assert info.validation_state == "Valid" and not info.trusted
    assert "signingCredential.untrusted" in info.failure_codes


def test_changed_pixels_fail_validation(creds):
    signed = prov.sign(_image("JPEG", 1), cert_chain=creds.chain_pem, private_key=creds.key_pem)
    info = prov.read(_flip_scan_bytes(signed), "JPEG", trust_anchors=creds.root_pem)
    assert info.present and info.validation_state == "Invalid"
    assert info.content_modified and not info.signature_ok
    assert "assertion.dataHash.mismatch" in info.failure_codes


def test_capture_and_extra_actions(creds):
    signed = prov.sign(
        _image("JPEG"), cert_chain=creds.chain_pem, private_key=creds.key_pem, digital_source_type="digitalCapture",
        actions=[{"action": "c2pa.color_adjustments"}],
    )  # fmt: skip
    info = prov.read(signed)
    assert info.digital_source_types == ["digitalCapture"]
    assert [a.action for a in info.actions] == ["c2pa.created", "c2pa.color_adjustments"]


def test_no_manifest_and_garbage():
    assert not prov.read(_image("PNG")).present
    junk = b"\xff\xd8\xff\xe0" + b"jumb c2pa " * 50
    info = prov.read(junk, "JPEG")
    assert not info.present and info.error


def test_sign_errors(creds):
    other = prov.make_dev_credentials()
    with pytest.raises(prov.C2paSignError):
        prov.sign(_image("JPEG"), cert_chain=creds.chain_pem, private_key=other.key_pem)  # key does not match
    with pytest.raises(prov.C2paSignError):
        prov.sign(b"BM" + b"\x00" * 64, cert_chain=creds.chain_pem, private_key=creds.key_pem)  # BMP


def test_dev_credentials_are_kept(tmp_path):
    a = prov.load_or_create_dev_credentials(tmp_path / "ca")
    b = prov.load_or_create_dev_credentials(tmp_path / "ca")
    assert a == b
    assert (tmp_path / "ca" / "key.pem").stat().st_mode & 0o077 == 0
    signed = prov.sign_synthetic(_image("PNG"), generator="verity-lab dcgan run1", credentials=a)
    info = prov.read(signed, trust_anchors=a.root_pem)
    assert info.trusted and info.claim_generator.startswith("verity-lab dcgan run1")


def test_parse_store_without_c2pa():
    store = {
        "active_manifest": "urn:a",
        "manifests": {
            "urn:a": {"claim_generator": "Editor/1.0", "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                {"action": "c2pa.opened"}, {"action": "c2pa.edited", "softwareAgent": "Editor"}]}}],
                "signature_info": {"common_name": "Editor Co", "issuer": "CA"}, "ingredients": [{"title": "parent.jpg"}]},
            "urn:b": {"assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [
                {"action": "c2pa.created", "digitalSourceType": prov.DST_PREFIX + "trainedAlgorithmicMedia"}]}}]},
        },
        "validation_state": "Valid",
    }  # fmt: skip
    info = prov.parse_store(store)
    assert info.claim_generator == "Editor/1.0" and info.signer == "Editor Co" and info.ingredients == ["parent.jpg"]
    assert info.history_source_types == ["trainedAlgorithmicMedia"] and info.digital_source_types == []
    assert [a.action for a in info.actions] == ["c2pa.opened", "c2pa.edited"] and info.signature_ok
