"""From-scratch networks: the NPR residual, output shapes, ONNX export parity."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from verity.models.nets import NETS, TinyAutoencoder, npr_residual  # noqa: E402
from verity.ops.npr import npr_residual as npr_np  # noqa: E402


def test_torch_residual_matches_numpy(rng):
    img = rng.integers(0, 256, (37, 50, 3)).astype(np.float32)
    t = npr_residual(torch.from_numpy(img).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    n = npr_np(img)
    assert t.shape == n.shape == (36, 50, 3)
    np.testing.assert_allclose(t, n)


def test_residual_vanishes_on_nearest_upsampled_image(rng):
    small = torch.from_numpy(rng.random((1, 3, 16, 16))).float()
    up = small.repeat_interleave(2, 2).repeat_interleave(2, 3)
    assert float(npr_residual(up).abs().max()) == 0.0
    assert float(npr_residual(torch.rand(1, 3, 32, 32)).abs().mean()) > 0.05


@pytest.mark.parametrize("name", sorted(NETS))
def test_onnx_export_matches_torch(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from verity.train.detector import export_onnx

    torch.manual_seed(0)
    net = NETS[name]().eval()
    path = tmp_path / f"{name}.onnx"
    export_onnx(torch, net, path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(2, 3, 64, 64), (1, 3, 96, 130), (3, 3, 256, 256)]:
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            a = net(x).numpy()
        b = sess.run(None, {"image": x.numpy()})[0]
        assert a.shape == b.shape == (shape[0],)
        np.testing.assert_allclose(b, a, atol=1e-4, rtol=1e-3)


def test_nets_are_deterministic_from_seed():
    outs = []
    for _ in range(2):
        torch.manual_seed(5)
        net = NETS["npr"]().eval()
        with torch.no_grad():
            outs.append(net(torch.ones(1, 3, 64, 64) * 0.3).numpy())
    np.testing.assert_array_equal(outs[0], outs[1])


@pytest.mark.parametrize("up", ["nearest", "deconv"])
def test_autoencoder_shapes(up):
    ae = TinyAutoencoder(up=up)
    with torch.no_grad():
        y = ae(torch.rand(1, 3, 64, 48))
    assert y.shape == (1, 3, 64, 48)
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    with pytest.raises(ValueError):
        TinyAutoencoder(up="bilinear-magic")
