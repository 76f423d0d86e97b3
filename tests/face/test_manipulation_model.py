"""The face-manipulation network's crop recipe, coordinate maps, calibration and shipped weights."""

from __future__ import annotations

import numpy as np
import pytest

from verity.face.manipulation import BOUNDARY_SIZE, INPUT_SIZE, Calibration, boundary_matrix, half_matrix


def test_half_matrix_maps_pixel_centres():
    m = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    h = half_matrix(m)
    # pixel centre 0.5 of the big crop lies between small pixels -0.25 and 0.25 ... exactly at 0
    np.testing.assert_allclose(h @ np.array([1.5, 1.5, 1.0]), [0.5, 0.5])


def test_boundary_matrix_composes_scale():
    m = np.array([[0.5, 0.1, 3.0], [-0.1, 0.5, 4.0]])
    b = boundary_matrix(m, scale=0.5)
    p = np.array([40.0, 60.0])  # a pixel of a heatmap drawn at half the image size
    crop128 = m[:, :2] @ (p / 0.5) + m[:, 2]
    want = (crop128 + 0.5) * BOUNDARY_SIZE / INPUT_SIZE - 0.5
    np.testing.assert_allclose(b[:, :2] @ p + b[:, 2], want)


def test_calibration_maps_offset_to_one_half():
    c = Calibration(offset=2.0, slope=1.5)
    s = c.score(np.array([2.0, 10.0, -10.0, 1e6]))
    assert s[0] == pytest.approx(0.5) and s[1] > 0.99 and s[2] < 0.01 and s[3] <= 1.0


def test_shipped_model_runs_and_is_calibrated(astro_face):
    from verity.face.manipulation import get_model, manipulation_crop, model_available

    if model_available():
        pytest.skip("face_sbi.onnx is not installed")
    img, det = astro_face
    crop, m = manipulation_crop(img, det.landmarks)
    assert crop.shape == (INPUT_SIZE, INPUT_SIZE, 3)
    model = get_model()
    logits, maps = model.predict(np.stack([crop, crop[:, ::-1]]))
    assert logits.shape == (2,) and maps.shape == (2, BOUNDARY_SIZE, BOUNDARY_SIZE)
    assert ((maps >= 0) & (maps <= 1)).all()
    info = model.calibration.info
    assert info["held_out"]["auc_sbi_vs_real_jpeg90"] > 0.8  # the number written at training time
    assert model.calibration.slope > 0


def test_self_blended_astronaut_scores_higher_than_the_original(astro_face):
    from verity.face.manipulation import get_model, manipulation_crop, model_available
    from verity.face.sbi import self_blend

    if model_available():
        pytest.skip("face_sbi.onnx is not installed")
    img, det = astro_face
    model = get_model()
    real = model.score(model.predict(manipulation_crop(img, det.landmarks)[0][None])[0])[0]
    fakes = [self_blend(img, det.landmarks, np.random.default_rng(s)).image for s in range(6)]
    scores = model.score(model.predict(np.stack([manipulation_crop(f, det.landmarks)[0] for f in fakes]))[0])
    assert real < 0.5
    assert scores.max() > real + 0.2 and np.median(scores) > real
