"""EXIF thumbnail versus main image: a preview that shows something else means the pixels changed."""

from __future__ import annotations

import io

import numpy as np

from verity.core.registry import Detector, register_detector
from verity.core.types import Finding, Sample

#: Below this correlation the thumbnail shows a different picture (camera originals: >= 0.90).
DIFFERENT_PICTURE = 0.85
#: Largest changed region (fraction of the compared area) that counts as an edit
#: (camera originals in the shared data: at most 0.005).
EDIT_REGION = 0.01
#: Correlation at which the main image counts as a crop of the thumbnail's picture (unrelated
#: camera photos placed in each other's thumbnails reach at most 0.92 in the shared data).
CROP_MATCH = 0.95
#: Largest changed region that is noted as a weak sign.
WEAK_REGION = 0.006


@register_detector
class ExifThumbnail(Detector):
    """Compares the JPEG preview stored in EXIF IFD1 with the main image.

    The thumbnail is decoded and located in the main image at thumbnail scale, allowing for
    letterbox bars, small framing differences, rotation and mirroring
    (:func:`verity.provenance.thumbnail.compare_thumbnail`); the per-pixel difference after tone
    matching is the heatmap. Calibration on the 102 camera photos with thumbnails in the shared
    data: correlation >= 0.90 and largest changed region <= 0.5% of the area for every one.
    Scores (``edited``):

    * correlation < 0.85 -- the preview shows a different picture: 0.95, or, when the main image
      is found inside the preview (match >= 0.95), a crop made after capture: 0.75;
    * a changed region >= 1% of the picture: 0.75 rising to 0.95 at 5%;
    * main image mirrored relative to the preview: 0.6 (flipped after capture);
    * a changed region of 0.6-1%: 0.55;
    * a match: 0.4 (weak: many editors rewrite the preview, and an edit smaller than a
      thumbnail pixel cannot show).

    No thumbnail -> abstain. Weight 1.2: a preview that disagrees with the picture is hard to
    explain without an edit after capture (cropping counts), and the heatmap shows where.
    """

    name = "exif_thumbnail"
    kind = "metadata"
    labels = ("edited",)
    weight = 1.2

    def run(self, sample: Sample) -> Finding:
        from PIL import Image

        from verity.ops.regions import bbox, describe_box, heatmap_mask
        from verity.provenance.metadata import exif_thumbnail
        from verity.provenance.thumbnail import compare_thumbnail, find_crop_in_thumbnail

        thumb_bytes = exif_thumbnail(sample.info.get("exif"))
        if thumb_bytes is None:
            return self.abstain("No EXIF thumbnail to compare with the image.")
        try:
            with Image.open(io.BytesIO(thumb_bytes)) as im:
                if im.width * im.height > 1024 * 1024:
                    return self.abstain(f"The EXIF thumbnail is implausibly large ({im.width}x{im.height}).")
                thumb = np.asarray(im.convert("RGB"))
        except Exception as e:  # noqa: BLE001 - a broken preview is reported, not raised
            return self.finding(
                0.5,
                [f"The EXIF thumbnail ({len(thumb_bytes):,} bytes) cannot be decoded ({type(e).__name__}); "
                 "nothing can be compared."],
                labels=[],
                details={"thumbnail_bytes": len(thumb_bytes)},
            )  # fmt: skip
        try:
            r = compare_thumbnail(sample.pixels, thumb)
        except ValueError as e:
            return self.abstain(f"The EXIF thumbnail cannot be compared ({e}).")
        th, tw = r.thumb_shape
        details = {
            "thumbnail_size": [tw, th], "correlation": round(r.correlation, 4),
            "changed_fraction": round(r.changed_fraction, 4), "largest_region": round(r.largest_region_fraction, 4),
            "rotation": r.rotation, "mirrored": r.mirrored, "letterboxed": r.letterboxed,
        }  # fmt: skip
        heat = np.clip(r.diff_map / 2.0, 0.0, 1.0).astype(np.float32)
        what = f"The {tw}x{th} EXIF thumbnail"
        if r.correlation < DIFFERENT_PICTURE:
            crop = find_crop_in_thumbnail(sample.pixels, thumb)
            if crop is not None and crop.correlation >= CROP_MATCH:
                x0, y0, x1, y1 = crop.box
                ch, cw = r.thumb_shape
                details["crop"] = {"correlation": round(crop.correlation, 4), "area_fraction": round(crop.area_fraction, 4),
                                   "box_percent": [round(100 * x0 / cw), round(100 * y0 / ch), round(100 * x1 / cw), round(100 * y1 / ch)]}
                s = (
                    f"The image is a crop of the picture in its {tw}x{th} EXIF thumbnail: it shows only "
                    f"{100 * crop.area_fraction:.0f}% of the preview's area (from {100 * x0 / cw:.0f}% to {100 * x1 / cw:.0f}% "
                    f"across and {100 * y0 / ch:.0f}% to {100 * y1 / ch:.0f}% down, match {crop.correlation:.2f}): "
                    "the rest was cut away after capture."
                )
                return self.finding(0.75, [s], details=details)
            s = (
                f"{what} shows a different picture from the main image (correlation {r.correlation:.2f}; camera "
                "originals match at 0.90 or more): the picture was replaced or heavily altered after the "
                "preview was written."
            )
            return self.finding(0.95, [s], heatmap=heat, details=details)
        if r.largest_region_fraction >= EDIT_REGION:
            t = min(1.0, (r.largest_region_fraction - EDIT_REGION) / 0.04)
            score = 0.75 + 0.2 * t
            mask = heatmap_mask(heat, (sample.height, sample.width), 0.5)
            box = bbox(mask)
            where = f"the region at {describe_box(box)}" if box else "one region"
            s = (
                f"{what} differs from the main image in {where} ({100 * r.largest_region_fraction:.1f}% of the "
                f"picture; elsewhere they match, correlation {r.correlation:.2f}): that part was changed after "
                "the preview was written."
            )
            return self.finding(score, [s], heatmap=heat, details=details)
        if r.mirrored:
            s = f"{what} is the mirror image of the main image: the picture was flipped after capture."
            return self.finding(0.6, [s], heatmap=heat, details=details)
        turn = f" (after a {90 * r.rotation} degree turn)" if r.rotation else ""
        if r.largest_region_fraction >= WEAK_REGION:
            s = (
                f"{what} matches the main image{turn} except for a small area "
                f"({100 * r.largest_region_fraction:.1f}% of the picture): a weak sign of a local change."
            )
            return self.finding(0.55, [s], heatmap=heat, details=details)
        s = (
            f"{what} matches the main image{turn} (correlation {r.correlation:.2f}, no changed region): "
            "no sign of an edit since the preview was written (editors often rewrite it, so this is weak)."
        )
        return self.finding(0.4, [s], heatmap=heat, details=details)
