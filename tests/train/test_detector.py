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
def test_tiny_end_to_end_run(shared_data, tmp_path, capsys):
    pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    from verity.train import detector

    p = argparse.ArgumentParser()
    detector.add_arguments(p)
    out = tmp_path / "w"
    args = p.parse_args(["--data", str(shared_data), "--out", str(out), "--limit", "2", "--npr-steps", "2",
                         "--ae-steps", "2", "--semantic-crops", "24"])
    assert detector.main(args) == 0
    text = capsys.readouterr().out
    assert "ai_generated/sd1" in text and "real_camera/camera_samples" in text and "ae/nearest" in text
    for name in ("learned_semantic.onnx", "learned_npr.onnx"):
        sess = ort.InferenceSession(str(out / name), providers=["CPUExecutionProvider"])
        y = sess.run(None, {"image": np.random.default_rng(0).random((2, 3, 64, 96), dtype=np.float32)})[0]
        assert y.shape == (2,) and np.isfinite(y).all()
