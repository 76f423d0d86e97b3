"""JPEG quantization tables: estimated IJG quality, standard (libjpeg) or custom (camera) tables."""

from __future__ import annotations

from verity.core.registry import Detector, register_detector
from verity.core.types import Finding, Sample


@register_detector
class JpegQTables(Detector):
    """Compares a JPEG's quantization tables with libjpeg's (IJG) standard tables.

    The tables are fitted to the IJG tables scaled for qualities 1..100
    (:func:`verity.ops.quant.analyze_tables`): the result is the closest quality and whether the
    match is exact. Exact IJG tables are written by libjpeg-based software (Pillow, GIMP,
    ImageMagick, web services) *and* by many cameras -- 35 of the 120 camera originals in the
    shared data use them -- so they are reported without an opinion (score 0.5, no label). A
    custom table in a file whose EXIF names a camera is what an in-camera encoder writes: score
    0.4 for ``edited`` and ``ai_generated`` (generators save through libjpeg-style encoders).
    Custom tables without a camera name (Photoshop and other editors also use their own) are
    reported without an opinion.

    Weight 0.5: the tables only say which *encoder* wrote the last save; an editor that keeps
    camera tables or a camera with IJG tables defeats it, so it is a small nudge.
    """

    name = "jpeg_qtables"
    kind = "metadata"
    labels = ("edited", "ai_generated")
    weight = 0.5

    def accepts(self, sample: Sample) -> bool:
        return sample.format == "JPEG"

    def run(self, sample: Sample) -> Finding:
        from verity.ops.quant import analyze_tables
        from verity.provenance.metadata import exif_str

        q = sample.quantization
        if not q:
            return self.abstain("The JPEG has no readable quantization tables.")
        try:
            a = analyze_tables(q)
        except ValueError as e:
            return self.abstain(f"The quantization tables cannot be analysed ({e}).")
        make = exif_str(sample.exif, 0x010F) if sample.exif else None
        details = {
            "quality": a.quality, "standard": a.standard, "max_abs_error": a.max_abs_error,
            "mean_abs_error": round(a.mean_abs_error, 3), "tables": a.n_tables, "camera_make": make,
        }  # fmt: skip
        n = f"{a.n_tables} quantization table{'s' if a.n_tables != 1 else ''}"
        if a.standard:
            s = (
                f"The {n} are exactly libjpeg's standard (IJG) tables at quality {a.quality}: the last save was "
                "made by libjpeg-style software or by a camera that uses the same tables (many do), "
                "so this says nothing either way."
            )
            return self.finding(0.5, [s], labels=[], details=details)
        near = f"closest to IJG quality {a.quality} (entries differ by up to {a.max_abs_error})"
        if a.all_ones:
            near = "all ones (quality 100, near lossless)"
        if make:
            s = (
                f"The {n} are not libjpeg's standard tables ({near}), as written by an in-camera encoder; "
                f"together with the EXIF camera make {make!r} this fits a camera original "
                "(some editors also keep custom tables)."
            )
            return self.finding(0.4, [s], details=details)
        s = (
            f"The {n} are custom, not libjpeg's standard tables ({near}); without a camera make in EXIF "
            "they could come from a camera or from an editor such as Photoshop."
        )
        return self.finding(0.5, [s], labels=[], details=details)
