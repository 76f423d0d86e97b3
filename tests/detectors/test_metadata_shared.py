"""The metadata group on the shared dev data (camera originals, re-saved photos, SD outputs)."""

from __future__ import annotations

import pytest

from verity.eval.survey import survey


@pytest.mark.slow
def test_shared_data_counts(shared_data):
    groups = {}
    for sub in ("ai_generated/sd1", "real_camera/camera_samples", "real_processed/camera_samples"):
        res = survey(shared_data / sub, progress=False)
        (g,) = res["groups"].values()
        groups[sub] = g
    sd, cam, proc = groups["ai_generated/sd1"], groups["real_camera/camera_samples"], groups["real_processed/camera_samples"]
    # every SD file carries Dream and/or sd-metadata chunks (five only after the image data)
    assert sd["detectors"]["generator_metadata"].get("flag_ai_generated", 0) == sd["files"] == 85
    assert sd["verdicts"] == {"ai_generated": 85}
    for g in (cam, proc):
        assert g["detectors"]["generator_metadata"].get("flag_ai_generated", 0) == 0
        assert g["verdicts"].get("ai_generated", 0) == 0 and g["verdicts"].get("edited", 0) == 0
    # camera originals: the thumbnail detector raises at most the mirrored Panasonic file
    assert cam["detectors"]["exif_thumbnail"].get("flag_edited", 0) <= 1
    assert cam["detectors"]["exif_camera"].get("authentic", 0) >= 100
