"""IPTC DigitalSourceType declared in XMP (how generators and editors label AI content)."""

from __future__ import annotations

from verity.core.registry import Detector, register_detector
from verity.core.types import Finding, Sample

#: term -> (score, labels). Scores above 0.5 speak for the labels, below for authenticity.
DST_SCORES: dict[str, tuple[float, tuple[str, ...]]] = {
    "trainedAlgorithmicMedia": (0.97, ("ai_generated",)),
    "algorithmicMedia": (0.9, ("ai_generated",)),
    "compositeWithTrainedAlgorithmicMedia": (0.95, ("edited",)),
    "compositeSynthetic": (0.9, ("edited",)),
    "composite": (0.8, ("edited",)),
    "humanEdits": (0.7, ("edited",)),
    "minorHumanEdits": (0.55, ("edited",)),
    "algorithmicallyEnhanced": (0.55, ("edited",)),
    "compositeCapture": (0.55, ("edited",)),
    "digitalCapture": (0.35, ("ai_generated", "edited")),
    "negativeFilm": (0.35, ("ai_generated", "edited")),
    "positiveFilm": (0.35, ("ai_generated", "edited")),
    "print": (0.4, ("ai_generated", "edited")),
    "computationalCapture": (0.4, ("ai_generated", "edited")),
}


@register_detector
class DigitalSourceType(Detector):
    """Reads the IPTC ``DigitalSourceType`` an XMP packet declares.

    The XMP packet is taken from the container (JPEG APP1, PNG ``XML:com.adobe.xmp`` iTXt, WebP
    ``XMP`` chunk) or, failing that, found by a bounded search of the first and last 2 MB of the
    file; it is read with regular expressions, so a packet that is not valid XML still gives its
    recognisable fields. Terms of the IPTC vocabulary map to a score:
    ``trainedAlgorithmicMedia`` 0.97 and ``algorithmicMedia`` 0.9 for ``ai_generated``;
    ``compositeWithTrainedAlgorithmicMedia`` (generative fill) 0.95, ``compositeSynthetic`` 0.9,
    ``composite`` 0.8, ``humanEdits`` 0.7 and minor/algorithmic enhancement 0.55 for ``edited``;
    ``digitalCapture``/film/print 0.35-0.4 (self-declared capture, weak evidence of
    authenticity). Other terms (digital art, screen capture...) give 0.5 with an explanation.
    When several terms appear, a synthetic or edit term wins over a capture term.

    Weight 1.5: generators (Adobe Firefly, Google, Microsoft, Midjourney) write this field
    deliberately, so it is strong evidence; it is weaker than a generator settings block because
    unsigned XMP is easy to edit or strip (C2PA makes it verifiable, see the ``c2pa`` detector).
    """

    name = "digital_source_type"
    kind = "metadata"
    labels = ("ai_generated", "edited")
    weight = 1.5

    def run(self, sample: Sample) -> Finding:
        from verity.provenance.metadata import DIGITAL_SOURCE_TYPES, parse_xmp, sample_xmp

        xmp, where = sample_xmp(sample)
        if not xmp:
            return self.abstain("The file has no XMP packet, so it declares no IPTC digital source type.")
        info = parse_xmp(xmp)
        terms = info.digital_source_types
        if not terms:
            note = "" if info.is_xml_like else " (the packet is not well-formed XMP)"
            return self.abstain(f"The {where} declares no IPTC digital source type{note}.", xml_like=info.is_xml_like)
        known = [t for t in terms if t in DST_SCORES]
        synthetic = [t for t in known if DST_SCORES[t][0] > 0.5]
        if synthetic:
            term = max(synthetic, key=lambda t: DST_SCORES[t][0])
        elif known:
            term = min(known, key=lambda t: DST_SCORES[t][0])
        else:
            term = terms[0]
        meaning = DIGITAL_SOURCE_TYPES.get(term, "not a term of the IPTC vocabulary")
        first = f"The {where} declares IPTC DigitalSourceType '{term}' ({meaning})"
        others = [t for t in terms if t != term]
        if others:
            first += f"; it also lists {', '.join(repr(t) for t in others[:4])}"
        details = {"terms": terms, "chosen": term, "creator_tool": info.creator_tool}
        if term not in DST_SCORES:
            return self.finding(
                0.5, [first + ". That says neither generated nor camera-captured."], labels=[], details=details
            )
        score, labels = DST_SCORES[term]
        tool = f" CreatorTool: {info.creator_tool!r}." if info.creator_tool else ""
        if score > 0.5:
            tail = ". Unsigned XMP can be edited, but generators and editors write this field on purpose."
        else:
            tail = ". This is a self-declaration in unsigned XMP, so it is weak evidence of a camera original."
        return self.finding(score, [first + tail + tool], labels=list(labels), details=details)
