"""The editing trail in metadata: software tags, modification time, XMP history, stored size."""

from __future__ import annotations

import math
from typing import Any

from verity.core.registry import Detector, register_detector
from verity.core.types import Finding, Sample

DATETIME, DTO, PIXEL_X, PIXEL_Y, MAKE = 0x0132, 0x9003, 0xA002, 0xA003, 0x010F


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _human_delta(seconds: float) -> str:
    s = abs(seconds)
    if s < 3600:
        return f"{s / 60:.0f} minutes"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} hours"
    if s < 2 * 365 * 86400:
        return f"{s / 86400:.0f} days"
    return f"{s / (365.25 * 86400):.1f} years"


@register_detector
class EditHistory(Detector):
    """Reads the editing trail software leaves in metadata.

    Signals, each added on the logit scale (score = sigmoid(sum), kept within 0.35..0.75):

    * a pixel editor (Photoshop, GIMP, Affinity, Snapseed, Facetune...) named in EXIF Software,
      XMP CreatorTool or history, IPTC OriginatingProgram or a PNG Software chunk: +0.4; a
      processing tool (Lightroom, raw converters, viewers, transfer tools, noise reduction): +0.1;
    * EXIF DateTime (last modification) more than 2 minutes after DateTimeOriginal: +0.35;
    * ``photoshop:DocumentAncestors`` in XMP (other documents were pasted or placed in): +0.6;
      a ``photoshop:History`` log: +0.2;
    * EXIF PixelXDimension/PixelYDimension different from the stored size (resized or cropped
      after capture): +0.15;
    * a camera make with none of the above and DateTime equal to DateTimeOriginal: -0.4
      (a clean camera trail, score 0.4).

    Nothing to read (no EXIF, XMP or software field) -> abstain.

    Weight 0.6 (``edited``): "processed is not edited" -- the shared data's real_processed photos
    are authentic pictures re-saved by editors, and a software tag cannot say whether anything
    in the picture changed. Even the strongest trail (0.75) moves the edited logit by only 0.66,
    so metadata alone never makes the verdict ``edited``; it adds to pixel evidence.
    """

    name = "edit_history"
    kind = "metadata"
    labels = ("edited",)
    weight = 0.6

    def run(self, sample: Sample) -> Finding:
        from verity.provenance.metadata import (
            classify_software,
            exif_str,
            parse_exif_datetime,
            parse_xmp,
            png_text_chunks,
            sample_xmp,
        )

        tags = sample.exif
        xmp, _ = sample_xmp(sample)
        xi = parse_xmp(xmp) if xmp else None
        software: list[tuple[str, str]] = []  # (where, value)
        for tag, label in ((0x0131, "EXIF Software"), (0x000B, "EXIF ProcessingSoftware")):
            v = exif_str(tags, tag)
            if v:
                software.append((label, v))
        if xi is not None:
            if xi.creator_tool:
                software.append(("XMP CreatorTool", xi.creator_tool))
            software += [("XMP history", a) for a in xi.software_agents[:20]]
        ps = sample.info.get("photoshop")
        if isinstance(ps, dict) and isinstance(ps.get(0x0404), (bytes, bytearray)):
            from verity.provenance.metadata import parse_iim

            try:
                software += [("IPTC OriginatingProgram", v) for v in parse_iim(bytes(ps[0x0404])).get("2:65", [])]
            except Exception:  # noqa: BLE001
                pass
        if sample.format == "PNG":
            software += [("PNG Software chunk", e.value[:200]) for e in png_text_chunks(sample.data, 4096)
                         if e.key.lower() == "software"]  # fmt: skip
        if not tags and xi is None and not software:
            return self.abstain("No EXIF, XMP or software field to read an editing trail from.")

        z = 0.0
        evidence: list[str] = []
        details: dict[str, Any] = {"software": [v for _, v in software]}
        editors = []
        processors = []
        for where, v in software:
            kind, canon = classify_software(v)
            if kind == "editor" and canon not in [c for _, c, _ in editors]:
                editors.append((where, canon, v))
            elif kind == "processor" and canon not in [c for _, c, _ in processors]:
                processors.append((where, canon, v))
        if editors:
            z += 0.4
            w, c, v = editors[0]
            evidence.append(
                f"{w} names the editor {c} ({v!r}): the file was saved by software that can change pixels, "
                "though re-saving alone changes nothing in the picture."
            )
        elif processors:
            z += 0.1
            w, c, v = processors[0]
            evidence.append(f"{w} names {c} ({v!r}), a processing tool (re-save or global adjustments).")
        details["editors"] = [c for _, c, _ in editors]
        details["processors"] = [c for _, c, _ in processors]

        dt = parse_exif_datetime(tags.get(DATETIME)) if tags else None
        dto = parse_exif_datetime(tags.get(DTO)) if tags else None
        clean_time = False
        if dt and dto:
            delta = (dt - dto).total_seconds()
            details["modified_after_capture_s"] = delta
            if delta > 120:
                z += 0.35
                evidence.append(
                    f"EXIF DateTime ({dt:%Y-%m-%d %H:%M:%S}) is {_human_delta(delta)} after DateTimeOriginal "
                    f"({dto:%Y-%m-%d %H:%M:%S}): the file was modified after capture."
                )
            elif abs(delta) <= 2:
                clean_time = True

        if xi is not None:
            if xi.document_ancestors:
                z += 0.6
                evidence.append(
                    f"XMP photoshop:DocumentAncestors lists {xi.document_ancestors} other document(s): "
                    "Photoshop records these when content from other files is pasted or placed in."
                )
            if xi.photoshop_history:
                z += 0.2
                evidence.append(f"XMP holds a Photoshop history log: {xi.photoshop_history[:120]!r}.")
            details["document_ancestors"] = xi.document_ancestors

        px, py = tags.get(PIXEL_X) if tags else None, tags.get(PIXEL_Y) if tags else None
        if isinstance(px, int) and isinstance(py, int) and px > 0 and py > 0:
            if (px, py) not in ((sample.width, sample.height), (sample.height, sample.width)):
                z += 0.15
                evidence.append(
                    f"EXIF records the image as {px}x{py} pixels but it is stored as {sample.width}x{sample.height}: "
                    "it was resized or cropped after capture."
                )
                details["exif_size"] = [px, py]

        camera = exif_str(tags, MAKE) if tags else None
        if z == 0.0 and camera and (clean_time or dt is None):
            z = -0.4
            evidence.append(
                f"The metadata trail is that of a camera original ({camera}): no editing software, "
                + ("modification time equal to capture time." if clean_time else "no modification time after capture.")
            )
        if not evidence:
            return self.abstain("The metadata holds no editing trail and no camera record.", **details)
        score = round(min(0.75, max(0.35, _sigmoid(z))), 4)
        details["logit"] = round(z, 3)
        return self.finding(score, evidence, details=details)
