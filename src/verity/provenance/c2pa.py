"""C2PA Content Credentials with ``c2pa-python`` (0.38), fully offline: read, validate and sign.

* :func:`read` validates a file's manifest store and returns a plain :class:`C2paInfo`
  (claim generator, actions, digital source types, signer, validation state and failure codes).
* :func:`sign` embeds a signed manifest declaring how an image was made (for the lab's outputs).
* :func:`make_dev_credentials` creates a local development CA and an ES256 signing certificate
  with the ``emailProtection`` extended key usage, which c2pa accepts for claim signing.

Offline: reading never fetches remote manifests or OCSP responses (``remote_manifest_fetch`` and
``ocsp_fetch`` are off), and signing uses no time-stamp authority (``ta_url=None``), so
signatures carry no trusted time stamp and are checked against the certificate's validity
period at reading time instead. A certificate is ``Trusted`` only when its chain ends at an
anchor you pass (``trust_anchors``, PEM) -- c2pa-python ships no trust list of its own and the
official C2PA list would need a download; without anchors a correct signature reads as
``Valid`` (signature and content intact, signer identity not vouched for).

``c2pa`` is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from verity.core.errors import VerityError

#: Prefix of IPTC digital source type URIs.
DST_PREFIX = "http://cv.iptc.org/newscodes/digitalsourcetype/"
#: verity format name -> MIME type understood by c2pa.
MIME = {
    "JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "TIFF": "image/tiff", "GIF": "image/gif",
    "MP4": "video/mp4", "MOV": "video/quicktime", "AVIF": "image/avif", "HEIC": "image/heic",
}  # fmt: skip
#: Environment variable naming a PEM file of extra trust anchors for :func:`read`.
TRUST_ENV = "VERITY_C2PA_TRUST_ANCHORS"

#: Failure codes meaning the signed content no longer matches (bytes changed after signing).
CONTENT_MISMATCH = (
    "assertion.dataHash.mismatch",
    "assertion.bmffHash.mismatch",
    "assertion.boxesHash.mismatch",
    "assertion.collectionHash.mismatch",
)
#: Failure codes meaning the manifest itself was altered or is incomplete.
MANIFEST_TAMPERED = (
    "claimSignature.mismatch",
    "claimSignature.missing",
    "assertion.hashedURI.mismatch",
    "assertion.missing",
    "assertion.notRedactable",
    "claim.missing",
    "claim.malformed",
    "signingCredential.invalid",
    "manifest.multipleParents",
)
#: Failure codes about who signed, not about what was signed.
TRUST_CODES = ("signingCredential.untrusted", "signingCredential.expired", "signingCredential.revoked")
#: Success codes saying that the signed hash of the content matches the file.
CONTENT_MATCH = ("assertion.dataHash.match", "assertion.bmffHash.match", "assertion.boxesHash.match",
                 "assertion.collectionHash.match")  # fmt: skip

#: C2PA validation status codes (C2PA 2.x, section "Validation") in plain words. Codes not listed
#: fall back to c2pa's own explanation.
CODE_MEANINGS: dict[str, str] = {
    # success
    "claimSignature.validated": "the claim's signature is mathematically correct for the signing certificate",
    "claimSignature.insideValidity": "the signature was made while the signing certificate was valid",
    "signingCredential.trusted": "the signing certificate chains to a trust anchor you configured",
    "signingCredential.ocsp.notRevoked": "the certificate authority says the signing certificate is not revoked",
    "timeStamp.trusted": "a trusted time-stamp authority vouches for when it was signed",
    "timeStamp.validated": "the time stamp is correct",
    "assertion.hashedURI.match": "an assertion is exactly as it was signed",
    "assertion.dataHash.match": "the file's content matches the hash that was signed (nothing changed since)",
    "assertion.bmffHash.match": "the video/ISO-BMFF content matches the hash that was signed (nothing changed since)",
    "assertion.boxesHash.match": "the file's boxes match the hash that was signed (nothing changed since)",
    "assertion.collectionHash.match": "every file of the collection matches its signed hash",
    "ingredient.manifest.validated": "an ingredient's own Content Credentials check out",
    "ingredient.claimSignature.validated": "an ingredient's signature is correct",
    # failure
    "claimSignature.mismatch": "the claim was changed after it was signed (its signature does not match)",
    "claimSignature.missing": "the claim has no signature",
    "claimSignature.outsideValidity": "the signature was made outside the signing certificate's validity period",
    "signingCredential.untrusted": "the signing certificate does not chain to any trust anchor you configured, "
    "so who signed it is self-asserted (pass --trust-anchors to trust a root)",
    "signingCredential.invalid": "the signing certificate is malformed or not allowed to sign Content Credentials",
    "signingCredential.revoked": "the certificate authority has revoked the signing certificate",
    "signingCredential.expired": "the signing certificate has expired and no trusted time stamp proves it was "
    "signed while valid",
    "timeStamp.mismatch": "the time stamp does not belong to this signature",
    "timeStamp.untrusted": "the time stamp comes from an authority that is not trusted",
    "timeStamp.outsideValidity": "the time stamp lies outside the time-stamp authority's certificate validity",
    "assertion.hashedURI.mismatch": "an assertion was changed after signing (its hash does not match the claim)",
    "assertion.missing": "an assertion named by the claim is missing",
    "assertion.multipleHardBindings": "the manifest binds to the content more than once, which is not allowed",
    "assertion.undeclared": "the manifest holds an assertion the claim does not list",
    "assertion.inaccessible": "an assertion could not be read",
    "assertion.notRedacted": "an assertion listed as redacted is still present",
    "assertion.selfRedacted": "the manifest redacts one of its own assertions, which is not allowed",
    "assertion.notRedactable": "a required assertion was redacted",
    "assertion.dataHash.mismatch": "the file's content no longer matches the signed hash: the bytes covered by "
    "the signature changed after signing (pixels edited or the file re-encoded)",
    "assertion.dataHash.malformed": "the signed content hash is malformed",
    "assertion.bmffHash.mismatch": "the video/ISO-BMFF content no longer matches the signed hash: it changed after signing",
    "assertion.bmffHash.malformed": "the signed BMFF hash is malformed",
    "assertion.boxesHash.mismatch": "the file's boxes no longer match the signed hash: it changed after signing",
    "assertion.boxesHash.unknownBox": "the file contains a box the signed hash does not cover",
    "assertion.collectionHash.mismatch": "a file of the collection no longer matches its signed hash",
    "assertion.action.ingredientMismatch": "an action refers to an ingredient that does not match",
    "assertion.action.malformed": "the list of actions breaks the C2PA rules (e.g. it does not start with "
    "created or opened)",
    "assertion.action.redacted": "an action was redacted, which is not allowed",
    "assertion.cbor.invalid": "an assertion's CBOR data cannot be parsed",
    "assertion.json.invalid": "an assertion's JSON data cannot be parsed",
    "assertion.timestamp.malformed": "a time-stamp assertion is malformed",
    "claim.missing": "the manifest has no claim",
    "claim.multiple": "the manifest has more than one claim",
    "claim.hardBindings.missing": "the claim does not bind to the content (no content hash)",
    "claim.required.missing": "a field the claim must have is missing",
    "claim.cbor.invalid": "the claim cannot be parsed",
    "claim.malformed": "the claim is malformed",
    "ingredient.hashedURI.mismatch": "an ingredient reference does not match the ingredient",
    "ingredient.manifest.missing": "an ingredient's manifest is missing",
    "ingredient.manifest.mismatch": "an ingredient's manifest does not match the one that was referenced",
    "ingredient.claimSignature.mismatch": "an ingredient's claim was changed after it was signed",
    "manifest.inaccessible": "the manifest could not be read",
    "manifest.missing": "a referenced manifest is missing from the store",
    "manifest.multipleParents": "the manifest declares more than one parent ingredient",
    "manifest.update.invalid": "an update manifest breaks the rules for updates",
    "manifest.update.wrongParents": "an update manifest does not have exactly one parent",
    "manifest.timestamp.invalid": "the manifest's time stamp is invalid",
    "manifest.timestamp.wrongParents": "the time-stamp manifest has the wrong parents",
    "manifest.compressed.invalid": "the compressed manifest cannot be read",
    "algorithm.unsupported": "the signature uses an algorithm this reader does not support",
    "algorithm.deprecated": "the signature uses a deprecated algorithm",
    "general.error": "the validator failed on an unexpected error",
    # informational
    "signingCredential.ocsp.skipped": "revocation (OCSP) was not checked: verity works offline",
    "signingCredential.ocsp.inaccessible": "the revocation service could not be reached",
    "timeStamp.malformed": "the time stamp is malformed",
}

#: What each overall state means, in words.
STATE_MEANINGS = {
    "Trusted": "the signature and the content hashes check out and the signing certificate chains to a "
    "trust anchor you configured",
    "Valid": "the signature and the content hashes check out, but the signing certificate is not on any trust "
    "list you configured, so the signer's identity is self-asserted",
    "Invalid": "the manifest fails validation: the content or the manifest changed after signing, or the "
    "signature is unusable",
}


#: IPTC digital source types in words.
SOURCE_TYPE_MEANINGS = {
    "trainedAlgorithmicMedia": "created by a generative AI model trained on sample content",
    "algorithmicMedia": "created purely by an algorithm (not trained on sample content)",
    "compositeSynthetic": "a composite that includes synthetic (generated) elements",
    "compositeWithTrainedAlgorithmicMedia": "edited with generative AI (e.g. generative fill or expand)",
    "algorithmicallyEnhanced": "a capture enhanced by an algorithm (e.g. denoising, upscaling)",
    "dataDrivenMedia": "made from data by an algorithm (e.g. a chart or a map)",
    "digitalCapture": "captured by a camera or other digital sensor",
    "computationalCapture": "captured with computational processing (e.g. a phone's multi-frame photo)",
    "negativeFilm": "scanned from a film negative",
    "positiveFilm": "scanned from a film positive (slide)",
    "print": "scanned from a print",
    "humanEdits": "edited by a person",
    "digitalCreation": "created by a person with digital tools (drawing, 3-D rendering)",
    "screenCapture": "a screenshot or screen recording",
    "virtualRecording": "recorded in a virtual environment",
    "composite": "a composite of several elements",
    "compositeCapture": "a composite of several captures (e.g. a panorama or focus stack)",
    "empty": "an empty starting asset",
}


def explain_code(code: str, fallback: str | None = None) -> str:
    """A C2PA validation status code in words (c2pa's own explanation for codes not listed)."""
    return CODE_MEANINGS.get(code) or (fallback or "").strip() or code



class C2paUnavailable(VerityError):
    """``c2pa-python`` is not installed."""

    code = "missing_dependency"


class C2paSignError(VerityError):
    """Signing failed (bad certificate, key, or unsupported format)."""

    code = "sign_failed"


def _c2pa() -> Any:
    try:
        import c2pa
    except ImportError as e:  # pragma: no cover - c2pa is a declared dependency
        raise C2paUnavailable("c2pa-python is not installed (pip install c2pa-python)") from e
    return c2pa


def term_of(uri: str | None) -> str | None:
    """``"http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"`` -> ``"trainedAlgorithmicMedia"``."""
    if not uri or not isinstance(uri, str):
        return None
    return uri.rstrip("/").rsplit("/", 1)[-1]


def has_c2pa_marker(data: bytes) -> bool:
    """Cheap pre-check: does the file contain a JUMBF ``c2pa`` box or an XMP link to a remote
    manifest (``dcterms:provenance``)?"""
    return (data.find(b"c2pa") >= 0 and data.find(b"jumb") >= 0) or data.find(b"dcterms:provenance") >= 0


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


@dataclass
class C2paAction:
    """One entry of a ``c2pa.actions`` assertion."""

    action: str
    digital_source_type: str | None = None
    software_agent: str | None = None
    when: str | None = None
    description: str | None = None


@dataclass
class C2paInfo:
    """What a file's C2PA manifest store says, as plain data.

    Attributes
    ----------
    present : bool
        A manifest store was found and parsed.
    validation_state : str or None
        ``"Trusted"``, ``"Valid"`` or ``"Invalid"`` (c2pa's overall verdict).
    claim_generator : str or None
        Name (and version) of the software that made the active claim.
    title, format : str or None
    actions : list of C2paAction
        Actions of the active manifest.
    digital_source_types : list of str
        IPTC terms found in the active manifest's actions.
    history_source_types : list of str
        IPTC terms found in earlier (ingredient) manifests.
    signer, issuer : str or None
        Certificate common name and issuer organisation of the active claim's signature.
    signed_at : str or None
        Signing time from a trusted time stamp, when there is one.
    alg : str or None
    failures : list of (str, str)
        Validation failure codes and explanations for the active manifest.
    informational : list of (str, str)
    ingredients : list of str
        Titles of the active manifest's ingredients.
    manifests : int
        Number of manifests in the store.
    remote_url : str or None
        Where the manifest lives when it is not embedded (not fetched unless ``allow_remote``).
    error : str or None
        Why the store could not be read, when ``present`` is False but C2PA data was there.
    successes : list of (str, str)
        Validation success codes of the active manifest (``assertion.dataHash.match``...).
    history : dict or None
        The edit history as a tree: the active manifest (``title``, ``state``, ``signer``,
        ``actions``, ``digital_source_types``...) with its ``ingredients``, each a node of the
        same shape (``relationship`` ``parentOf``/``componentOf``/``inputTo``; ``manifest`` None
        for an ingredient without Content Credentials).
    ancestry_source_types : list of str
        IPTC terms declared by the chain of ``parentOf`` ingredients (what this image was made
        from), nearest first.
    component_source_types : list of str
        IPTC terms declared by other ingredients (components placed into the image...).
    embedded : bool or None
        The manifest store is embedded in the file (False: fetched from ``remote_url``).
    """

    present: bool = False
    validation_state: str | None = None
    claim_generator: str | None = None
    title: str | None = None
    format: str | None = None
    actions: list[C2paAction] = field(default_factory=list)
    digital_source_types: list[str] = field(default_factory=list)
    history_source_types: list[str] = field(default_factory=list)
    signer: str | None = None
    issuer: str | None = None
    signed_at: str | None = None
    alg: str | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)
    informational: list[tuple[str, str]] = field(default_factory=list)
    ingredients: list[str] = field(default_factory=list)
    manifests: int = 0
    remote_url: str | None = None
    error: str | None = None
    successes: list[tuple[str, str]] = field(default_factory=list)
    history: dict[str, Any] | None = None
    ancestry_source_types: list[str] = field(default_factory=list)
    component_source_types: list[str] = field(default_factory=list)
    embedded: bool | None = None

    @property
    def failure_codes(self) -> list[str]:
        return [c for c, _ in self.failures]

    @property
    def content_hash(self) -> str | None:
        """``"match"`` when the signed content hash was checked and matches, ``"mismatch"`` when
        the content changed after signing, ``None`` when no content hash was checked."""
        if self.content_modified:
            return "mismatch"
        if any(c in CONTENT_MATCH or c.endswith("Hash.match") for c, _ in self.successes):
            return "match"
        return None

    @property
    def content_modified(self) -> bool:
        """The signed hash of the content no longer matches the file."""
        return any(c in CONTENT_MISMATCH or (c.endswith("Hash.mismatch")) for c in self.failure_codes)

    @property
    def manifest_tampered(self) -> bool:
        return any(c in MANIFEST_TAMPERED for c in self.failure_codes)

    @property
    def trusted(self) -> bool:
        return self.validation_state == "Trusted"

    @property
    def signature_ok(self) -> bool:
        """Signature and content verified (whether or not the signer is trusted)."""
        return self.present and not self.content_modified and not self.manifest_tampered and not [
            c for c in self.failure_codes if c not in TRUST_CODES
        ]

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def _load_pem(value: str | bytes | os.PathLike | None) -> str | None:
    """PEM text from text, bytes or a file path; ``None`` passes through."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    s = str(value)
    if "-----BEGIN" in s:
        return s
    p = Path(s)
    if p.is_file():
        return p.read_text("ascii", "replace")
    raise VerityError(f"trust anchors: {s!r} is neither PEM text nor a readable file")


@lru_cache(maxsize=8)
def _reader_context(anchors: str | None, allowed: str | None, verify_trust: bool, remote: bool = False) -> Any:
    c2pa = _c2pa()
    cfg: dict[str, Any] = {
        "verify": {
            "remote_manifest_fetch": bool(remote),
            "ocsp_fetch": False,
            "verify_trust": bool(verify_trust),
            "verify_after_reading": True,
        },
    }
    trust: dict[str, Any] = {}
    if anchors:
        trust["user_anchors"] = anchors
    if allowed:
        trust["allowed_list"] = allowed
    if trust:
        cfg["trust"] = trust
    return c2pa.Context.from_dict(cfg)


def _agent(a: Any) -> str | None:
    if isinstance(a, str):
        return a
    if isinstance(a, dict):
        n = a.get("name")
        v = a.get("version")
        return f"{n} {v}" if n and v else (str(n) if n else None)
    return None


def _generator(m: dict[str, Any]) -> str | None:
    info = m.get("claim_generator_info")
    if isinstance(info, list) and info and isinstance(info[0], dict):
        return _agent(info[0])
    if isinstance(info, dict):
        return _agent(info)
    cg = m.get("claim_generator")
    return cg if isinstance(cg, str) else None


def _actions(m: dict[str, Any]) -> list[C2paAction]:
    out = []
    for a in m.get("assertions") or []:
        if not isinstance(a, dict) or not str(a.get("label", "")).startswith("c2pa.actions"):
            continue
        data = a.get("data") if isinstance(a.get("data"), dict) else {}
        for act in data.get("actions") or []:
            if not isinstance(act, dict):
                continue
            params = act.get("parameters") if isinstance(act.get("parameters"), dict) else {}
            out.append(
                C2paAction(
                    action=str(act.get("action", "")),
                    digital_source_type=term_of(act.get("digitalSourceType") or params.get("digitalSourceType")),
                    software_agent=_agent(act.get("softwareAgent")),
                    when=act.get("when") if isinstance(act.get("when"), str) else None,
                    description=act.get("description") if isinstance(act.get("description"), str) else None,
                )
            )
    return out


def parse_store(store: dict[str, Any]) -> C2paInfo:
    """Turn c2pa's manifest-store JSON (``Reader.json()``) into a :class:`C2paInfo`."""
    info = C2paInfo(present=True)
    manifests = store.get("manifests") if isinstance(store.get("manifests"), dict) else {}
    info.manifests = len(manifests)
    info.validation_state = store.get("validation_state")
    active_label = store.get("active_manifest")
    active = manifests.get(active_label) if isinstance(active_label, str) else None
    if isinstance(active, dict):
        info.claim_generator = _generator(active)
        info.title = active.get("title")
        info.format = active.get("format")
        info.actions = _actions(active)
        info.digital_source_types = list(dict.fromkeys(a.digital_source_type for a in info.actions if a.digital_source_type))
        sig = active.get("signature_info") if isinstance(active.get("signature_info"), dict) else {}
        info.signer = sig.get("common_name")
        info.issuer = sig.get("issuer")
        info.signed_at = sig.get("time")
        info.alg = sig.get("alg")
        info.ingredients = [str(i.get("title")) for i in active.get("ingredients") or [] if isinstance(i, dict)]
    hist = []
    for label, m in manifests.items():
        if label != active_label and isinstance(m, dict):
            hist += [a.digital_source_type for a in _actions(m) if a.digital_source_type]
    info.history_source_types = list(dict.fromkeys(hist))
    res = store.get("validation_results")
    am = res.get("activeManifest") if isinstance(res, dict) and isinstance(res.get("activeManifest"), dict) else None
    if am is not None:
        info.failures = _codes(am.get("failure"))
        info.informational = _codes(am.get("informational"))
        info.successes = _codes(am.get("success"))
    elif isinstance(store.get("validation_status"), list):  # older layout
        info.failures = _codes(store["validation_status"])
    if isinstance(active, dict):
        deltas = _ingredient_deltas(res)
        info.history = _manifest_node(active_label, manifests, deltas, 0, set())
        info.history.update(state=info.validation_state, failure_codes=[c for c, _ in info.failures])
        anc: list[str] = []
        comp: list[str] = []
        _collect_sources(info.history, anc, comp, True)
        info.ancestry_source_types = list(dict.fromkeys(anc))
        info.component_source_types = list(dict.fromkeys(comp))
    return info


def _codes(items: Any) -> list[tuple[str, str]]:
    return [(str(f.get("code")), str(f.get("explanation", ""))) for f in items or [] if isinstance(f, dict)]


#: Deepest ingredient tree that is walked (a store is data from the file: never trust its shape).
MAX_HISTORY_DEPTH = 32


def _ingredient_deltas(res: Any) -> dict[str, dict[str, list[tuple[str, str]]]]:
    """``ingredientDeltas`` of the validation results: ingredient assertion URI -> re-validation
    at reading time (with the reader's trust anchors) of that ingredient's manifest."""
    out: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for d in (res.get("ingredientDeltas") if isinstance(res, dict) else None) or []:
        if not isinstance(d, dict) or not isinstance(d.get("validationDeltas"), dict):
            continue
        v = d["validationDeltas"]
        out[str(d.get("ingredientAssertionURI", ""))] = {k: _codes(v.get(k)) for k in ("success", "failure", "informational")}
    return out


def _state_of(success: list[str], failure: list[str]) -> str:
    if any(c not in TRUST_CODES for c in failure):
        return "Invalid"
    if failure:
        return "Valid"
    return "Trusted" if "signingCredential.trusted" in success else "Valid"


def _manifest_node(label: Any, manifests: dict[str, Any], deltas: dict, depth: int, seen: set) -> dict[str, Any]:
    m = manifests.get(label) if isinstance(label, str) else None
    node: dict[str, Any] = {"manifest": label if isinstance(m, dict) else None, "ingredients": []}
    if not isinstance(m, dict):
        return node
    sig = m.get("signature_info") if isinstance(m.get("signature_info"), dict) else {}
    acts = _actions(m)
    node.update(
        title=m.get("title") if isinstance(m.get("title"), str) else None,
        format=m.get("format") if isinstance(m.get("format"), str) else None,
        claim_generator=_generator(m),
        signer=sig.get("common_name"),
        issuer=sig.get("issuer"),
        signed_at=sig.get("time"),
        actions=[{"action": a.action, "digital_source_type": a.digital_source_type, "software_agent": a.software_agent,
                  "when": a.when} for a in acts],  # fmt: skip
        digital_source_types=list(dict.fromkeys(a.digital_source_type for a in acts if a.digital_source_type)),
    )
    if depth >= MAX_HISTORY_DEPTH or label in seen:
        node["truncated"] = True
        return node
    seen = seen | {label}
    for ing in m.get("ingredients") or []:
        if isinstance(ing, dict):
            node["ingredients"].append(_ingredient_node(ing, label, manifests, deltas, depth + 1, seen))
    return node


def _ingredient_node(ing: dict, parent: str, manifests: dict[str, Any], deltas: dict, depth: int, seen: set) -> dict[str, Any]:
    label = ing.get("active_manifest")
    if not isinstance(label, str) and isinstance(ing.get("manifest_data"), dict):
        label = ing["manifest_data"].get("identifier")
    node = _manifest_node(label, manifests, deltas, depth, seen)
    node["title"] = ing.get("title") if isinstance(ing.get("title"), str) else node.get("title")
    node["format"] = ing.get("format") if isinstance(ing.get("format"), str) else node.get("format")
    node["relationship"] = ing.get("relationship") if isinstance(ing.get("relationship"), str) else "componentOf"
    if node["manifest"] is None:
        node["state"] = None  # no Content Credentials of its own
        node["failure_codes"] = []
        return node
    vr = ing.get("validation_results")
    am = vr.get("activeManifest") if isinstance(vr, dict) and isinstance(vr.get("activeManifest"), dict) else {}
    success = [c for c, _ in _codes(am.get("success"))]
    failure = [c for c, _ in _codes(am.get("failure"))]
    if not am and isinstance(ing.get("validation_status"), list):
        failure = [c for c, _ in _codes(ing["validation_status"])]
    delta = deltas.get(f"self#jumbf=/c2pa/{parent}/c2pa.assertions/{ing.get('label')}")
    if delta is not None:  # re-validated while reading, with the reader's trust anchors
        d_success = [c for c, _ in delta["success"]]
        d_failure = [c for c, _ in delta["failure"]]
        if "signingCredential.trusted" in d_success:
            failure = [c for c in failure if c != "signingCredential.untrusted"]
        success += d_success
        failure += [c for c in d_failure if c not in failure]
    node["state"] = _state_of(success, failure)
    node["failure_codes"] = failure
    return node


def _collect_sources(node: dict[str, Any], ancestry: list[str], components: list[str], on_parent_chain: bool) -> None:
    for ing in node.get("ingredients") or []:
        types = ing.get("digital_source_types") or []
        parent = on_parent_chain and ing.get("relationship") == "parentOf"
        (ancestry if parent else components).extend(types)
        _collect_sources(ing, ancestry, components, parent)


def read(
    data: bytes,
    fmt: str | None = None,
    *,
    trust_anchors: str | bytes | os.PathLike | None = None,
    allowed_list: str | bytes | os.PathLike | None = None,
    verify_trust: bool = True,
    allow_remote: bool = False,
) -> C2paInfo:
    """Read and validate the C2PA manifest store of an image, offline.

    Parameters
    ----------
    data : bytes
        The whole file.
    fmt : str, optional
        verity format name (``"JPEG"``...) or a MIME type; sniffed by c2pa when omitted.
    trust_anchors : str, bytes or path, optional
        PEM root certificates to trust (added to c2pa's ``user_anchors``); default: the file
        named by ``$VERITY_C2PA_TRUST_ANCHORS`` if set.
    allowed_list : str, bytes or path, optional
        PEM end-entity certificates trusted as they are.
    verify_trust : bool
        Check the signer's certificate chain against the anchors (``Trusted`` vs ``Valid``).
    allow_remote : bool
        Fetch a manifest that the file only links to (XMP ``dcterms:provenance``) over the
        network. Off by default: the link is reported in ``remote_url`` and nothing is fetched.

    Returns
    -------
    C2paInfo
        ``present=False`` when there is no manifest (``error`` says why when C2PA data was found
        but could not be read). Never raises for bad files.

    Raises
    ------
    C2paUnavailable
        When ``c2pa-python`` is not installed.
    """
    c2pa = _c2pa()
    if trust_anchors is None and os.environ.get(TRUST_ENV):
        trust_anchors = os.environ[TRUST_ENV]
    ctx = _reader_context(_load_pem(trust_anchors), _load_pem(allowed_list), verify_trust, bool(allow_remote))
    mime = MIME.get(fmt or "", fmt) if fmt else None
    try:
        reader = c2pa.Reader.try_create(mime, io.BytesIO(data), None, ctx)
    except c2pa.C2paError as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        info = C2paInfo(error=msg)
        if "remote" in msg.lower():
            import re

            m = re.search(r"https?://\S+", msg)
            info.remote_url = m.group(0).rstrip(".,;)") if m else None
        return info
    except Exception as e:  # noqa: BLE001 - native errors of any kind become a reason
        return C2paInfo(error=f"{type(e).__name__}: {e}")
    if reader is None:
        return C2paInfo()
    try:
        with reader:
            store = json.loads(reader.json())
            try:
                remote = reader.get_remote_url()
            except Exception:  # noqa: BLE001
                remote = None
            try:
                embedded = bool(reader.is_embedded())
            except Exception:  # noqa: BLE001
                embedded = None
    except Exception as e:  # noqa: BLE001
        return C2paInfo(error=f"{type(e).__name__}: {e}")
    info = parse_store(store)
    info.remote_url = remote
    info.embedded = embedded
    return info


def describe(info: C2paInfo, *, allow_remote: bool = False) -> dict[str, Any]:
    """A :class:`C2paInfo` as the document ``verity verify --json`` prints (docs/schema.md).

    Keys: ``credentials`` (``found``, ``none``, ``remote`` -- linked, not fetched -- or
    ``unreadable``), ``state`` and ``state_meaning``, ``content_hash`` (``match``/``mismatch``/
    null), ``signer``, ``signed_at``, ``time_stamped``, ``claim_generator``, ``title``, ``actions``,
    ``digital_source_types`` (term and meaning), ``history`` (the ingredient tree), ``codes``
    (``failure``/``informational``/``success``, each code with c2pa's explanation and its meaning in
    words), ``remote_url``, ``embedded``, ``summary`` (one sentence) and ``error``.
    """
    def codes(items: list[tuple[str, str]]) -> list[dict[str, str]]:
        return [{"code": c, "explanation": e, "meaning": explain_code(c, e)} for c, e in items]

    doc: dict[str, Any] = {
        "credentials": "none", "state": None, "state_meaning": None, "content_hash": None, "signer": None,
        "signed_at": None, "time_stamped": False, "claim_generator": None, "title": None, "actions": [],
        "digital_source_types": [], "history": None, "codes": {"failure": [], "informational": [], "success": []},
        "remote_url": info.remote_url, "embedded": info.embedded, "error": None,
    }  # fmt: skip
    if not info.present:
        err = info.error or ""
        if info.remote_url and not allow_remote:
            doc["credentials"] = "remote"
            doc["summary"] = (f"Content Credentials are stored remotely at {info.remote_url}; not fetched (verity works "
                              "offline; pass --allow-remote to fetch them), so nothing was verified.")  # fmt: skip
        elif err and not err.startswith("NotSupported"):
            doc["credentials"] = "unreadable"
            doc["error"] = err
            doc["summary"] = f"C2PA data was found but cannot be read ({err[:200]}); nothing was verified."
        else:
            doc["summary"] = "No Content Credentials found."
        return doc
    fails = [(c, e) for c, e in info.failures]
    doc.update(
        credentials="found",
        state=info.validation_state,
        state_meaning=STATE_MEANINGS.get(info.validation_state or ""),
        content_hash=info.content_hash,
        signer={"name": info.signer, "issuer": info.issuer, "algorithm": info.alg},
        signed_at=info.signed_at,
        time_stamped=bool(info.signed_at),
        claim_generator=info.claim_generator,
        title=info.title,
        actions=[{"action": a.action, "digital_source_type": a.digital_source_type, "software_agent": a.software_agent,
                  "when": a.when, "description": a.description} for a in info.actions],  # fmt: skip
        digital_source_types=[{"term": t, "meaning": SOURCE_TYPE_MEANINGS.get(t, t)} for t in info.digital_source_types],
        history=info.history,
        codes={"failure": codes(fails), "informational": codes(info.informational), "success": codes(info.successes)},
    )
    state = info.validation_state or "unknown"
    who = info.signer or "an unnamed signer"
    if state == "Invalid":
        first = next((c for c, _ in fails if c not in TRUST_CODES), fails[0][0] if fails else "")
        doc["summary"] = f"Content Credentials signed by {who} are INVALID: {explain_code(first)}."
    elif state == "Trusted":
        doc["summary"] = f"Content Credentials signed by {who} are valid and the signer is trusted."
    else:
        doc["summary"] = (f"Content Credentials signed by {who} are valid, but the signer is not on any configured trust "
                          "list (its identity is self-asserted).")  # fmt: skip
    return doc


# --------------------------------------------------------------------------------------------
# Signing
# --------------------------------------------------------------------------------------------


@dataclass
class DevCredentials:
    """A development CA and a signing certificate (PEM bytes).

    Attributes
    ----------
    root_pem : bytes
        The self-signed root: pass it as ``trust_anchors`` to :func:`read` to get ``Trusted``.
    chain_pem : bytes
        Signing certificate followed by the root (what c2pa embeds in the signature).
    key_pem : bytes
        The signing certificate's private key (PKCS#8, unencrypted).
    """

    root_pem: bytes
    chain_pem: bytes
    key_pem: bytes


def make_dev_credentials(
    common_name: str = "verity development signer",
    organization: str = "verity lab (development, untrusted)",
    days: int = 365,
) -> DevCredentials:
    """Create a throw-away CA and an ES256 (P-256) claim-signing certificate with ``cryptography``.

    The leaf has ``digitalSignature`` key usage and the ``emailProtection`` extended key usage
    (accepted by c2pa's default certificate profile), a subject and authority key identifier,
    and is valid from one day ago for ``days`` days. These credentials prove nothing about
    identity; they exist so that tests and the lab can sign offline.

    Returns
    -------
    DevCredentials
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = _dt.datetime.now(_dt.timezone.utc)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"{organization} root"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)]
    )
    no_usage = dict(
        content_commitment=False, key_encipherment=False, data_encipherment=False, key_agreement=False,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(days=1))
        .not_valid_after(now + _dt.timedelta(days=10 * max(days, 1)))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, key_cert_sign=True, crl_sign=True, **no_usage), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, common_name), x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)]
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(root_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(days=1))
        .not_valid_after(now + _dt.timedelta(days=max(days, 1)))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **no_usage), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return DevCredentials(
        root_pem=root.public_bytes(pem),
        chain_pem=leaf.public_bytes(pem) + root.public_bytes(pem),
        key_pem=key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


@dataclass
class TestPki:
    """A local test certificate authority: root, intermediate and an ES256 signing certificate (PEM).

    Attributes
    ----------
    root_pem : bytes
        Self-signed root: the trust anchor a reader passes to get ``Trusted``.
    intermediate_pem : bytes
        Intermediate CA, issued by the root, that issued the signing certificate.
    chain_pem : bytes
        Signing certificate followed by the intermediate (what ``verity sign --cert`` takes).
    key_pem : bytes
        The signing certificate's private key (PKCS#8, unencrypted).
    """

    root_pem: bytes
    intermediate_pem: bytes
    chain_pem: bytes
    key_pem: bytes


def make_test_pki(
    common_name: str = "verity test signer",
    organization: str = "verity local test CA (untrusted)",
    days: int = 365,
) -> TestPki:
    """Create a three-level test PKI with ``cryptography``: root CA -> intermediate CA -> ES256 leaf.

    The leaf follows c2pa's default certificate profile (``digitalSignature`` key usage, the
    ``emailProtection`` extended key usage, subject and authority key identifiers, not a CA), valid
    from one day ago for ``days`` days; the CAs are valid ten times longer. The CA private keys are
    discarded: this PKI can sign images but never issue another certificate, and it proves nothing
    about identity. Only readers that pass ``root_pem`` as a trust anchor see ``Trusted``.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = _dt.datetime.now(_dt.timezone.utc)
    no_usage = dict(
        content_commitment=False, key_encipherment=False, data_encipherment=False, key_agreement=False,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip

    def name(cn: str) -> Any:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)])

    def ca(subject: Any, key: Any, issuer: Any, issuer_key: Any, path_length: int) -> Any:
        b = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(days=1))
            .not_valid_after(now + _dt.timedelta(days=10 * max(days, 1)))
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, key_cert_sign=True, crl_sign=True, **no_usage), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )
        if issuer_key is not key:
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = name(f"{organization} root")
    root = ca(root_name, root_key, root_name, root_key, 1)
    int_key = ec.generate_private_key(ec.SECP256R1())
    int_name = name(f"{organization} intermediate")
    inter = ca(int_name, int_key, root_name, root_key, 0)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name(common_name))
        .issuer_name(int_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(days=1))
        .not_valid_after(now + _dt.timedelta(days=max(days, 1)))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **no_usage), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(int_key.public_key()), critical=False)
        .sign(int_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return TestPki(
        root_pem=root.public_bytes(pem),
        intermediate_pem=inter.public_bytes(pem),
        chain_pem=leaf.public_bytes(pem) + inter.public_bytes(pem),
        key_pem=key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


#: Files :func:`write_test_pki` creates.
PKI_FILES = ("root.pem", "intermediate.pem", "chain.pem", "key.pem")


def write_test_pki(directory: str | os.PathLike, *, force: bool = False, **kwargs: Any) -> dict[str, Path]:
    """:func:`make_test_pki` written to ``directory`` (``root.pem``, ``intermediate.pem``,
    ``chain.pem``, ``key.pem``; the key with mode 0600). Refuses to overwrite existing files
    unless ``force``. Returns file name -> path."""
    d = Path(directory)
    paths = {n: d / n for n in PKI_FILES}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not force:
        raise VerityError(f"{', '.join(existing)} already exist(s); use --force to replace")
    pki = make_test_pki(**kwargs)
    try:
        d.mkdir(parents=True, exist_ok=True)
        paths["root.pem"].write_bytes(pki.root_pem)
        paths["intermediate.pem"].write_bytes(pki.intermediate_pem)
        paths["chain.pem"].write_bytes(pki.chain_pem)
        if paths["key.pem"].exists():
            paths["key.pem"].unlink()
        fd = os.open(paths["key.pem"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pki.key_pem)
    except OSError as e:
        raise VerityError(f"cannot write to {d}: {e.strerror or e}") from None
    return paths


def load_or_create_dev_credentials(directory: str | os.PathLike | None = None) -> DevCredentials:
    """Development credentials kept in ``directory`` (``root.pem``, ``chain.pem``, ``key.pem``).

    Created on first use (the key file with mode 0600); default directory
    ``$XDG_CACHE_HOME/verity/c2pa-dev`` (``~/.cache/verity/c2pa-dev``). Reusing one CA lets a
    reader trust every lab output by passing ``root.pem`` as a trust anchor.
    """
    d = Path(directory) if directory else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "verity" / "c2pa-dev"
    files = [d / "root.pem", d / "chain.pem", d / "key.pem"]
    if all(f.is_file() for f in files):
        return DevCredentials(*(f.read_bytes() for f in files))
    creds = make_dev_credentials()
    d.mkdir(parents=True, exist_ok=True)
    files[0].write_bytes(creds.root_pem)
    files[1].write_bytes(creds.chain_pem)
    fd = os.open(files[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(creds.key_pem)
    return creds


def sniff_media(data: bytes) -> str | None:
    """Container format from the first bytes: verity's image names (``JPEG``...) or, for ISO-BMFF
    files, ``MP4``, ``MOV``, ``AVIF`` or ``HEIC`` (by the ``ftyp`` brand); ``None`` when unknown."""
    from verity.core.io import sniff_format

    fmt = sniff_format(data[:16])
    if fmt:
        return fmt
    if len(data) >= 12 and data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand == b"qt  ":
            return "MOV"
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis", b"hevc"):
            return "HEIC"
        return "MP4"
    return None


def _sniff(data: bytes) -> str:
    fmt = sniff_media(data)
    if fmt not in MIME:
        raise C2paSignError(f"cannot sign {fmt or 'unknown'} files (supported: {', '.join(MIME)})")
    return fmt


def _check_key_matches(chain: bytes, key: bytes) -> None:
    """c2pa signs with whatever key it is given; a key that does not belong to the leaf
    certificate would produce a manifest that never validates, so refuse it here."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
    except ImportError:  # pragma: no cover - cryptography is a dependency of c2pa's tooling
        return
    try:
        leaf = x509.load_pem_x509_certificates(chain)[0]
        pk = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError, IndexError) as e:
        raise C2paSignError(f"C2PA signing failed: cannot load the certificate chain or key ({e})") from None
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if leaf.public_key().public_bytes(enc, fmt) != pk.public_key().public_bytes(enc, fmt):
        raise C2paSignError("C2PA signing failed: the private key does not belong to the first certificate of the chain")


def sign(
    image_bytes: bytes,
    fmt: str | None = None,
    *,
    cert_chain: bytes | str,
    private_key: bytes | str,
    digital_source_type: str | None = "trainedAlgorithmicMedia",
    actions: list[dict[str, Any]] | None = None,
    claim_generator: str = "verity",
    claim_generator_version: str | None = None,
    title: str | None = None,
    alg: str = "es256",
    thumbnail: bool = False,
    assertions: list[dict[str, Any]] | None = None,
    parent: bytes | None = None,
    parent_title: str | None = None,
    when: str | None = None,
) -> bytes:
    """Embed a signed C2PA manifest in an image and return the new file's bytes.

    Parameters
    ----------
    image_bytes : bytes
        The image file (JPEG, PNG, WebP, TIFF or GIF).
    fmt : str, optional
        verity format name or MIME type; sniffed from the bytes when omitted.
    cert_chain, private_key : bytes or str
        PEM signing certificate chain (leaf first) and its private key.
    digital_source_type : str or None
        IPTC term (``trainedAlgorithmicMedia``, ``digitalCapture``...) or full URI. Without a
        ``parent`` it goes on the ``c2pa.created`` action that is added first (``None`` adds no
        created action: then pass ``actions`` yourself). With a ``parent`` it goes on every action
        of ``actions`` that has none, and a ``c2pa.edited`` action carries it when there are none.
    actions : list of dict, optional
        Further c2pa action dicts (``{"action": "c2pa.edited", ...}``), after the created (or
        opened) one.
    claim_generator, claim_generator_version : str
        Name and version recorded as the claim generator and the action's software agent.
    title : str, optional
        Manifest title.
    alg : str
        Signing algorithm matching the key (``es256``, ``es384``, ``ps256``, ``ed25519``...).
    thumbnail : bool
        Let c2pa embed a thumbnail of the image in the manifest.
    assertions : list of dict, optional
        Extra assertions (``{"label": ..., "data": ...}``).
    parent : bytes, optional
        The file this image was made from. It becomes the ``parentOf`` ingredient and the first
        action is ``c2pa.opened``; when it carries Content Credentials they are kept in the new
        store, so the edit history survives. Pass the input itself to re-sign a file that
        already has a manifest without losing it.
    parent_title : str, optional
        Ingredient title (e.g. the parent's file name).
    when : str, optional
        ISO 8601 time recorded in the actions (default: now, UTC). Self-declared: only a
        time-stamp authority (not used offline) would vouch for it.

    Returns
    -------
    bytes

    Raises
    ------
    C2paSignError
        With c2pa's one-line reason (bad certificate profile, key mismatch, unsupported format).
    """
    c2pa = _c2pa()
    fmt = fmt or _sniff(image_bytes)
    mime = MIME.get(fmt, fmt)
    version = claim_generator_version
    if version is None:
        try:
            from verity import __version__ as version  # type: ignore[attr-defined,no-redef]
        except Exception:  # noqa: BLE001
            version = "0"
    agent = {"name": claim_generator, "version": str(version)}
    when = when or _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    uri = None
    if digital_source_type:
        uri = digital_source_type if "://" in digital_source_type else DST_PREFIX + digital_source_type
    acts: list[dict[str, Any]] = []
    extra = [dict(a) for a in actions or []]
    ingredient = None
    if parent is not None:
        ingredient = {"title": parent_title or "parent", "relationship": "parentOf", "label": "verity.parent"}
        acts.append({"action": "c2pa.opened", "softwareAgent": agent, "when": when,
                     "parameters": {"ingredientIds": ["verity.parent"]}})  # fmt: skip
        if uri:
            if not extra:
                extra = [{"action": "c2pa.edited"}]
            for a in extra:
                a.setdefault("digitalSourceType", uri)
    elif uri:
        acts.append({"action": "c2pa.created", "digitalSourceType": uri, "softwareAgent": agent, "when": when})
    for a in extra:
        a.setdefault("softwareAgent", agent)
        a.setdefault("when", when)
    acts += extra
    manifest: dict[str, Any] = {
        "claim_generator_info": [agent],
        "assertions": ([{"label": "c2pa.actions", "data": {"actions": acts}}] if acts else []) + list(assertions or []),
    }
    if title:
        manifest["title"] = title
    chain = cert_chain.encode() if isinstance(cert_chain, str) else cert_chain
    key = private_key.encode() if isinstance(private_key, str) else private_key
    _check_key_matches(chain, key)
    settings = {
        "builder": {"thumbnail": {"enabled": bool(thumbnail)}},
        "verify": {"verify_after_sign": False, "remote_manifest_fetch": False, "ocsp_fetch": False},
    }
    out = io.BytesIO()
    try:
        info = c2pa.C2paSignerInfo(alg, chain, key, None)
        signer = c2pa.Signer.from_info(info)
        ctx = c2pa.Context.from_dict(settings)
        with c2pa.Builder(manifest, context=ctx) as builder:
            if ingredient is not None:
                pfmt = sniff_media(parent) or fmt
                builder.add_ingredient(ingredient, MIME.get(pfmt, pfmt), io.BytesIO(parent))
            builder.sign(signer, mime, io.BytesIO(image_bytes), out)
    except c2pa.C2paError as e:
        raise C2paSignError(f"C2PA signing failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    except (TypeError, ValueError) as e:
        raise C2paSignError(f"C2PA signing failed: {e}") from None
    return out.getvalue()


def sign_synthetic(
    image_bytes: bytes,
    generator: str = "verity-lab",
    fmt: str | None = None,
    credentials: DevCredentials | None = None,
) -> bytes:
    """Sign an image the lab generated as ``trainedAlgorithmicMedia`` with development credentials.

    Parameters
    ----------
    image_bytes : bytes
    generator : str
        Recorded as the claim generator and software agent.
    fmt : str, optional
    credentials : DevCredentials, optional
        Default: :func:`load_or_create_dev_credentials`.
    """
    creds = credentials or load_or_create_dev_credentials()
    return sign(
        image_bytes,
        fmt,
        cert_chain=creds.chain_pem,
        private_key=creds.key_pem,
        digital_source_type="trainedAlgorithmicMedia",
        claim_generator=generator,
        claim_generator_version="1",
    )
