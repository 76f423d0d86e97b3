"""Camera capture fields in EXIF: make, model, lens, exposure settings, capture time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from verity.core.registry import Detector, register_detector
from verity.core.types import Finding, Sample

MAKE, MODEL, DATETIME = 0x010F, 0x0110, 0x0132
EXPOSURE, FNUMBER, ISO, FOCAL = 0x829A, 0x829D, 0x8827, 0x920A
DTO, DTD, MAKERNOTE = 0x9003, 0x9004, 0x927C
LENS_MAKE, LENS_MODEL = 0xA433, 0xA434
#: Secondary capture fields (flash, metering mode, exposure program, white balance).
MINOR_FIELDS = (0x9209, 0x9207, 0x8822, 0xA403)


def _exposure_text(e: float) -> str:
    return f"1/{round(1 / e)} s" if e < 0.5 else f"{e:g} s"


def capture_settings(tags: dict[int, Any]) -> tuple[list[str], list[str]]:
    """Plausible capture settings as short strings, and implausible ones described.

    Parameters
    ----------
    tags : dict
        Merged EXIF tags (``Sample.exif``).

    Returns
    -------
    (list of str, list of str)
        e.g. ``["1/125 s", "f/5.6", "ISO 200", "50 mm"]`` and ``["f-number 0.0"]``.
    """
    from verity.provenance.metadata import exif_float

    ok: list[str] = []
    bad: list[str] = []
    e = exif_float(tags, EXPOSURE)
    if e is not None:
        (ok.append(_exposure_text(e)) if 1e-5 <= e <= 3600 else bad.append(f"exposure time {e:g} s"))
    f = exif_float(tags, FNUMBER)
    if f is not None:
        (ok.append(f"f/{f:.1f}") if 0.7 <= f <= 128 else bad.append(f"f-number {f:g}"))
    iso = exif_float(tags, ISO)
    if iso is not None:
        (ok.append(f"ISO {iso:g}") if 1 <= iso <= 1_000_000 else bad.append(f"ISO {iso:g}"))
    fl = exif_float(tags, FOCAL)
    if fl is not None:
        (ok.append(f"{fl:g} mm") if 0.5 <= fl <= 5000 else bad.append(f"focal length {fl:g} mm"))
    return ok, bad


@register_detector
class ExifCamera(Detector):
    """Weighs the camera capture record in EXIF against generation.

    A camera writes its make and model, the exposure it used (exposure time, f-number, ISO, focal
    length), the capture time and usually a proprietary maker note. Image generators write none
    of these. Scores (``ai_generated``):

    * camera named, >= 3 plausible exposure settings and a valid capture time: 0.3;
    * camera named with 1-2 settings: 0.35; camera named only: 0.42;
    * settings without a camera name: 0.4;
    * EXIF without camera fields, or with implausible values (f/0, a capture year before 1980 or
      in the future): 0.5, no opinion, explained;
    * no EXIF at all: 0.55 -- weak, because uploads, messengers and screenshots strip EXIF.

    Weight 1.0: EXIF can be copied from a real photo into a generated one, so a complete camera
    record lowers the AI probability (logit(0.3) = -0.85) without being able to override strong
    pixel or provenance evidence.
    """

    name = "exif_camera"
    kind = "metadata"
    labels = ("ai_generated",)
    weight = 1.0

    def run(self, sample: Sample) -> Finding:
        from verity.provenance.metadata import exif_str, find_generator_names, parse_exif_datetime

        tags = sample.exif
        if not tags:
            return self.finding(
                0.55,
                [
                    f"The {sample.format} file carries no EXIF camera record (make, model, exposure). "
                    "Uploads and messaging apps strip EXIF, so this is only weak evidence."
                ],
                details={"exif": False},
            )
        make = exif_str(tags, MAKE)
        model = exif_str(tags, MODEL)
        camera = " ".join(dict.fromkeys(x for x in (make, model) if x)) if (make or model) else None
        if model and make and model.lower().startswith(make.split()[0].lower()):
            camera = model
        gen_named = find_generator_names(" ".join(x for x in (make, model) if x), software_field=True)
        settings, bad = capture_settings(tags)
        when = parse_exif_datetime(tags.get(DTO)) or parse_exif_datetime(tags.get(DTD))
        raw_when = exif_str(tags, DTO) or exif_str(tags, DTD)
        if when is not None and not (1980 <= when.year <= datetime.now().year + 1):
            bad.append(f"capture time {when:%Y-%m-%d}")
        elif when is None and raw_when:
            bad.append(f"capture time {raw_when!r}")
        lens = exif_str(tags, LENS_MODEL)
        mn = tags.get(MAKERNOTE)
        makernote = len(mn) if isinstance(mn, (bytes, bytearray)) else 0
        minor = sum(1 for t in MINOR_FIELDS if t in tags)
        details = {
            "exif": True, "make": make, "model": model, "settings": settings, "implausible": bad,
            "capture_time": when.isoformat() if when else None, "maker_note_bytes": makernote,
            "lens": lens, "minor_fields": minor,
        }  # fmt: skip
        if gen_named:
            return self.finding(
                0.5, [f"EXIF make/model name {gen_named[0]} ({camera!r}), not a camera."], labels=[], details=details
            )
        if not camera and not settings:
            return self.finding(
                0.5,
                ["The file has EXIF but no camera fields (no make, model or exposure settings): it was "
                 "written by software, which says nothing either way."],
                labels=[],
                details=details,
            )  # fmt: skip
        if bad:
            return self.finding(
                0.5,
                [f"EXIF names {camera or 'no camera'} but has implausible values ({', '.join(bad)}), "
                 "so the camera record cannot be trusted."],
                labels=[],
                details=details,
            )  # fmt: skip
        parts = []
        if camera:
            parts.append(f"EXIF names the camera {camera!r}" + (f" with lens {lens!r}" if lens else ""))
        else:
            parts.append("EXIF names no camera")
        if settings:
            parts.append(f"records capture settings ({', '.join(settings)})")
        if when:
            parts.append(f"{'records ' if not settings else ''}a capture time of {when:%Y-%m-%d %H:%M:%S}")
        if len(parts) == 1:
            sentence = parts[0] + "."
        else:
            sentence = ", ".join(parts[:-1]) + " and " + parts[-1] + "."
        if makernote:
            sentence += f" It also carries a {makernote:,}-byte maker note (proprietary camera data)."
        if camera and len(settings) >= 3 and when:
            score = 0.3
            sentence += " Generators do not write a capture record like this, though EXIF can be copied from another photo."
        elif camera and settings:
            score = 0.35
            sentence += " This partial capture record is moderate evidence of a camera original."
        elif camera:
            score = 0.42
            sentence += " Without exposure settings this is weak evidence of a camera original."
        else:
            score = 0.4
            sentence += " Exposure settings without a camera name are weak evidence of a camera original."
        return self.finding(score, [sentence], details=details)
