"""C2PA Content Credentials: who signed the image, what they declared, and whether it still matches."""

from __future__ import annotations

import os

from verity.core.registry import Detector, register_detector
from verity.core.types import Finding, Sample

#: IPTC terms that declare generated content.
AI_TERMS = ("trainedAlgorithmicMedia", "algorithmicMedia", "compositeSynthetic")
#: IPTC terms that declare generative content mixed into other content.
AI_EDIT_TERMS = ("compositeWithTrainedAlgorithmicMedia",)
#: IPTC terms that declare a capture.
CAPTURE_TERMS = ("digitalCapture", "computationalCapture", "negativeFilm", "positiveFilm", "print")
#: C2PA actions that change what a picture shows (score for ``edited``).
EDIT_ACTIONS = {
    "c2pa.placed": 0.8,
    "c2pa.removed": 0.8,
    "c2pa.edited": 0.7,
    "c2pa.drawing": 0.7,
    "c2pa.edited.metadata": 0.5,
}
#: C2PA actions that only process the whole picture.
PROCESSING_ACTIONS = (
    "c2pa.color_adjustments", "c2pa.cropped", "c2pa.resized", "c2pa.orientation", "c2pa.transcoded",
    "c2pa.repackaged", "c2pa.converted", "c2pa.filtered", "c2pa.published", "c2pa.opened", "c2pa.created",
)  # fmt: skip


@register_detector
class C2paManifest(Detector):
    """Reads and validates the C2PA manifest (Content Credentials) embedded in the file, offline.

    Uses c2pa-python (:func:`verity.provenance.c2pa.read`) with remote-manifest and OCSP fetching
    off. Trust anchors (PEM) come from the ``trust_anchors`` option or the file named by
    ``$VERITY_C2PA_TRUST_ANCHORS``; without them a good signature is ``Valid`` (intact, signer not
    vouched for) rather than ``Trusted``. Scores:

    * content hash mismatch (pixels or bytes changed after signing): ``edited`` 0.93;
      manifest itself altered (claim signature or assertion hash mismatch): ``edited`` 0.85;
    * intact manifest whose actions declare ``trainedAlgorithmicMedia`` / ``algorithmicMedia`` /
      ``compositeSynthetic``: ``ai_generated`` 0.98 (trusted signer) or 0.95 (untrusted);
      ``compositeWithTrainedAlgorithmicMedia`` (generative fill): ``edited`` 0.93 / 0.9; an
      AI term only in an earlier (ingredient) manifest: ``ai_generated`` 0.9;
    * declared edits (``c2pa.placed``, ``c2pa.removed`` 0.8; ``c2pa.edited``, ``c2pa.drawing`` 0.7);
    * declared capture (``digitalCapture``...) with only processing actions: 0.15 (trusted) or
      0.3 (untrusted) for ``ai_generated`` and ``edited``;
    * anything else: 0.5 with the manifest described. No manifest: abstain.

    The score is what reports show. Fusion does not sum it: the finding's
    ``details["provenance"]["claim"]`` (``ai_generated``, ``ai_composite``, ``tampered_content``,
    ``tampered_content_ai``, ``tampered_manifest``, ``edits_content``, ``edits``, ``ai_component``,
    ``capture_trusted``, ``capture_untrusted``, ``invalid``, ``none``) is applied after fusion by
    :func:`verity.core.fusion.apply_provenance`: decisive for a valid declaration of AI generation
    or AI compositing, a bounded likelihood ratio otherwise (docs/provenance.md). A manifest that is
    Invalid for reasons other than changed content or an altered manifest (an unusable certificate,
    malformed actions) is reported and has no effect. The weight attribute (1.5) is not used:
    ``c2pa`` is in :data:`verity.core.fusion.POST_FUSION_DETECTORS`.
    """

    name = "c2pa"
    kind = "provenance"
    labels = ("ai_generated", "edited")
    weight = 1.5
    requires = ("c2pa",)

    def run(self, sample: Sample) -> Finding:
        from verity.provenance.c2pa import has_c2pa_marker, read

        if not has_c2pa_marker(sample.data):
            return self.abstain("No C2PA manifest (Content Credentials) in the file.")
        anchors = self.options.get("trust_anchors") or os.environ.get("VERITY_C2PA_TRUST_ANCHORS") or None
        try:
            info = read(sample.data, sample.format, trust_anchors=anchors)
        except Exception as e:  # noqa: BLE001 - e.g. an unreadable trust-anchor file
            return self.abstain(f"C2PA data found but not checked: {type(e).__name__}: {e}")
        if not info.present:
            if info.remote_url:
                return self.finding(
                    0.5,
                    [f"The file links to Content Credentials stored remotely at {info.remote_url}; verity works "
                     "offline and did not fetch them, so nothing was verified."],
                    labels=[],
                    details={"remote_url": info.remote_url},
                )  # fmt: skip
            if info.error:
                return self.finding(
                    0.5,
                    [f"The file contains C2PA data that cannot be read ({info.error[:160]}); nothing can be verified."],
                    labels=[],
                    details={"error": info.error},
                )
            return self.abstain("No C2PA manifest (Content Credentials) in the file.")

        details = info.to_dict()
        details["actions"] = [a.action for a in info.actions]
        signer = info.signer or "an unnamed signer"
        if info.issuer and info.issuer != info.signer:
            signer += f" (issued by {info.issuer})"
        trust = (
            "its certificate chains to a configured trust anchor"
            if info.trusted
            else "its certificate is not on any configured trust list, so the signer's identity is self-asserted"
        )
        gen = f", made with {info.claim_generator}" if info.claim_generator else ""
        declared = ", ".join(f"'{t}'" for t in info.digital_source_types) or "no digital source type"

        def result(score, ev, labels, claim):
            details["provenance"] = {"claim": claim, "trusted": info.trusted, "state": info.validation_state,
                                     "signer": info.signer, "sentence": ev[0]}  # fmt: skip
            return self.finding(score, ev, labels=labels, details=details)

        if info.content_modified or info.manifest_tampered:
            codes = [c for c in info.failure_codes if c not in ("signingCredential.untrusted",)]
            what = (
                "the image bytes covered by the signature changed after signing (pixels edited or re-encoded)"
                if info.content_modified
                else "the manifest itself was altered after signing"
            )
            s = (
                f"The C2PA manifest signed by {signer}{gen} fails validation ({', '.join(codes[:3])}): {what}."
            )
            ev = [s]
            if info.digital_source_types:
                ev.append(f"When signed, it declared the image {declared}.")
            declared_ai = bool(set(info.digital_source_types + info.ancestry_source_types) & set(AI_TERMS))
            claim = "tampered_manifest" if info.manifest_tampered else ("tampered_content_ai" if declared_ai else "tampered_content")
            return result(0.93 if info.content_modified else 0.85, ev, ["edited"], claim)

        if not info.signature_ok:  # Invalid for a reason that is not tampering (bad certificate, malformed actions)
            codes = [c for c in info.failure_codes if c not in ("signingCredential.untrusted",)]
            s = (f"The C2PA manifest signed by {signer}{gen} is invalid ({', '.join(codes[:3])}), but not because "
                 "the image or the manifest changed; what it declares cannot be relied on.")  # fmt: skip
            return result(0.5, [s], [], "invalid")

        head = f"A valid C2PA manifest signed by {signer}{gen} ({trust})"
        ai = [t for t in info.digital_source_types if t in AI_TERMS]
        ai_edit = [t for t in info.digital_source_types if t in AI_EDIT_TERMS]
        anc_ai = [t for t in info.ancestry_source_types if t in AI_TERMS]
        if ai:
            s = f"{head} declares the image '{ai[0]}': created by a generative model."
            return result(0.98 if info.trusted else 0.95, [s], ["ai_generated"], "ai_generated")
        if ai_edit:
            s = f"{head} declares '{ai_edit[0]}': generative-AI content was mixed into the image (e.g. generative fill)."
            return result(0.93 if info.trusted else 0.9, [s], ["edited"], "ai_composite")
        if anc_ai:
            s = (f"{head} says the image was made from an image whose own manifest declares '{anc_ai[0]}' "
                 "(generated content, then processed).")  # fmt: skip
            return result(0.9, [s], ["ai_generated"], "ai_generated")
        edits = sorted({a.action for a in info.actions if a.action in EDIT_ACTIONS}, key=lambda a: -EDIT_ACTIONS[a])
        if edits and EDIT_ACTIONS[edits[0]] > 0.5:
            s = f"{head} records the edit action(s) {', '.join(edits)}: the content was changed after capture or creation."
            claim = "edits_content" if EDIT_ACTIONS[edits[0]] >= 0.8 else "edits"
            return result(EDIT_ACTIONS[edits[0]], [s], ["edited"], claim)
        comp_ai = [t for t in info.history_source_types + info.component_source_types if t in AI_TERMS + AI_EDIT_TERMS]
        if comp_ai:
            s = f"{head}; an ingredient placed into it declares '{comp_ai[0]}' (generated content)."
            return result(0.9, [s], ["edited"], "ai_component")
        capture = [t for t in info.digital_source_types + info.ancestry_source_types if t in CAPTURE_TERMS]
        chain = _parent_chain(info.history)
        others = [a["action"] for n in chain for a in n.get("actions") or [] if a["action"] not in PROCESSING_ACTIONS]
        chain_ok = all(n.get("state") in ("Valid", "Trusted") for n in chain[1:])
        if capture and not others and chain_ok:
            s = (
                f"{head} declares a capture ('{capture[0]}') with no editing actions"
                + (": a signed camera original." if info.trusted else "; the signature is intact but the signer is not vouched for.")
            )
            claim = "capture_trusted" if info.trusted else "capture_untrusted"
            return result(0.15 if info.trusted else 0.3, [s], ["ai_generated", "edited"], claim)
        acts = ", ".join(dict.fromkeys(a.action for a in info.actions)) or "no actions"
        s = f"{head} records {acts} and {declared}; that says neither generated nor edited."
        return result(0.5, [s], [], "none")


def _parent_chain(node: dict | None) -> list[dict]:
    """The active manifest and its chain of ``parentOf`` ingredients that have manifests."""
    out = []
    while isinstance(node, dict) and node.get("manifest") and len(out) < 64:
        out.append(node)
        node = next((i for i in node.get("ingredients") or [] if i.get("relationship") == "parentOf"), None)
    return out
