"""Zero-shot coding surprise (verity.ops.zed, ZedNet): likelihood maths, pyramid, causality, statistics."""

from __future__ import annotations

import numpy as np
import pytest

from verity.ops import zed


def _brute(mu: float, log_b: float) -> tuple[np.ndarray, np.ndarray]:
    ks = np.arange(int(mu) - 3000, int(mu) + 3000)
    nll = zed.laplace_nll(ks, np.full(ks.shape, mu), np.full(ks.shape, log_b))
    return ks, np.exp(-nll)


@pytest.mark.parametrize("mu,log_b", [(10.3, -2.5), (100.5, 0.0), (50.49, 1.5), (128.0, 3.5), (7.77, -0.7)])
def test_discretised_laplace_is_a_distribution_and_entropy_matches_the_sum(mu, log_b):
    _, p = _brute(mu, log_b)
    assert p.sum() == pytest.approx(1.0, abs=1e-9)
    h = -(p * np.log(np.maximum(p, 1e-300))).sum()
    assert zed.laplace_entropy(np.array(mu), np.array(log_b)) == pytest.approx(h, rel=1e-9, abs=1e-12)


def test_nll_is_lowest_at_the_mean_and_grows_with_distance():
    ks = np.arange(90, 111)
    nll = zed.laplace_nll(ks, np.full(ks.shape, 100.2), np.zeros(ks.shape))
    assert ks[np.argmin(nll)] == 100
    assert np.all(np.diff(nll[10:]) > 0) and np.all(np.diff(nll[:11]) < 0)


def test_expected_nll_equals_entropy():
    rng = np.random.default_rng(0)
    mu, lb = 60.3, 1.2
    ks, p = _brute(mu, lb)
    x = rng.choice(ks, size=200_000, p=p / p.sum())
    nll = zed.laplace_nll(x, np.full(x.shape, mu), np.full(x.shape, lb)).mean()
    assert nll == pytest.approx(float(zed.laplace_entropy(np.array(mu), np.array(lb))), abs=0.01)


def test_luma_and_pyramid():
    rng = np.random.default_rng(1)
    px = rng.integers(0, 256, (67, 90, 3), dtype=np.uint8)
    y = zed.luma8(px)
    assert y.dtype == np.uint8 and y.shape == (67, 90)
    pyr = zed.pyramid(y, 3)
    assert [p.shape for p in pyr] == [(67, 90), (33, 45), (16, 22)]
    assert pyr[1][0, 0] == int(np.floor(y[:2, :2].astype(float).mean() + 0.5))
    assert len(zed.pyramid(y[:20, :20], 3)) == 2  # stops under 16 px


def _oracle_predictor(noise_scale: float):
    """A fixed predictor: mean of the left and upper neighbours (causal), constant scale."""

    def predict(batch):
        x = batch[:, 0].astype(np.float64)
        left = np.concatenate([x[:, :, :1], x[:, :, :-1]], axis=2)
        up = np.concatenate([x[:, :1], x[:, :-1]], axis=1)
        mu = 0.5 * (left + up)
        return np.stack([mu, np.full(mu.shape, np.log(noise_scale))], axis=1).astype(np.float32)

    return predict


def test_smooth_image_codes_cheaper_than_noisy_and_surprise_sign():
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:200, 0:240]
    smooth = 120 + 60 * np.sin(xx / 23.0) * np.cos(yy / 31.0)
    noisy = np.clip(smooth + rng.normal(0, 8, smooth.shape), 1, 254)
    s_px = np.repeat(np.rint(smooth)[..., None], 3, 2).astype(np.uint8)
    n_px = np.repeat(np.rint(noisy)[..., None], 3, 2).astype(np.uint8)
    predict = _oracle_predictor(2.0)
    st_s = zed.image_stats(s_px, predict, crop=64, max_crops=3)
    st_n = zed.image_stats(n_px, predict, crop=64, max_crops=3)
    assert st_s["nll"] < st_n["nll"]
    # same predicted scale everywhere -> same expected cost; the smooth image is "more predictable
    # than expected" (D < 0), the noisy one less (D > 0)
    assert st_s["entropy"] == pytest.approx(st_n["entropy"], abs=0.05)
    assert st_s["d"] < 0 < st_n["d"]
    assert len(st_s["levels"]) == 3
    for lv in st_s["levels"]:
        f = 2 ** lv["level"]
        assert all(bf == (x0 * f, y0 * f, x1 * f, y1 * f) for bf, (x0, y0, x1, y1) in zip(lv["boxes_full"], lv["boxes"]))
    fv = zed.feature_vector(st_s)
    assert fv.shape == (9,) and np.isfinite(fv).all()


def test_coding_stats_skips_saturated_pixels_and_borders():
    y = np.full((20, 20), 255.0)
    y[10:, 10:] = 100
    params = np.stack([np.full(y.shape, 100.0), np.zeros(y.shape)])
    st = zed.coding_stats(y, params, margin=2)
    assert st["n"] == 10 * 8  # rows 10..19, columns 10..17 (right margin)
    assert zed.coding_stats(np.full((8, 8), 0.0), params[:, :8, :8])["n"] == 0


# ---- the torch network (training side) -------------------------------------------------------


def test_masked_network_is_causal_and_matches_numpy_likelihood():
    torch = pytest.importorskip("torch", reason="torch (the [train] extra) is not installed")
    from verity.models.nets import ZedNet, discretized_laplace_logp

    torch.manual_seed(0)
    net = ZedNet().eval()
    for p in net.parameters():  # make every weight matter
        torch.nn.init.normal_(p, 0, 0.3)
    x = torch.randint(0, 256, (1, 1, 24, 24)).float()
    with torch.no_grad():
        a = net(x)
        i, j = 12, 9
        x2 = x.clone()
        x2[0, 0, i, j] = 255 - x2[0, 0, i, j]  # change one "future" pixel
        b = net(x2)
    diff = (a - b).abs().sum(1)[0]
    changed = torch.nonzero(diff > 1e-6).tolist()
    assert changed, "the change should reach later pixels"
    # every prediction that changed comes after (i, j) in raster order, and (i, j) itself did not change
    assert all((r, c) > (i, j) for r, c in changed)
    rng = np.random.default_rng(3)
    xs = rng.integers(0, 256, 500).astype(np.float64)
    mu = rng.uniform(-10, 265, 500)
    lb = rng.uniform(-3, 4.2, 500)
    t = -discretized_laplace_logp(torch.tensor(xs), torch.tensor(mu), torch.tensor(lb)).numpy()
    assert np.allclose(t, zed.laplace_nll(xs, mu, lb), atol=1e-9)


def test_coarse_to_fine_network_is_causal_given_the_coarse_level():
    torch = pytest.importorskip("torch", reason="torch (the [train] extra) is not installed")
    from verity.models.nets import ZedNet

    torch.manual_seed(1)
    net = ZedNet(coarse=True).eval()
    for p in net.parameters():
        torch.nn.init.normal_(p, 0, 0.3)
    x = torch.randint(20, 236, (1, 1, 24, 24)).float()
    x2 = x.clone()
    x2[0, 0, 13, 8] += 7  # two pixels of one 2x2 cell change in opposite directions:
    x2[0, 0, 13, 9] -= 7  # the coarse level (the cell's mean) stays the same
    with torch.no_grad():
        diff = (net(x) - net(x2)).abs().sum(1)[0]
    changed = torch.nonzero(diff > 1e-6).tolist()
    assert changed and all((r, c) > (13, 8) for r, c in changed)
    x3 = x.clone()
    x3[0, 0, 13, 8] += 40  # this one changes the cell's mean: the coarse context reaches earlier pixels
    with torch.no_grad():
        diff = (net(x) - net(x3)).abs().sum(1)[0]
    assert diff[11, 8] > 0


def test_training_lowers_the_cost_of_smooth_images(tmp_path):
    torch = pytest.importorskip("torch", reason="torch (the [train] extra) is not installed")
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    from verity.train.zed import export, onnx_predictor, train

    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:256, 0:256]
    imgs = []
    for k in range(6):
        base = 128 + 50 * np.sin(xx / (9.0 + k) + k) * np.cos(yy / (13.0 + k))
        imgs.append(np.clip(np.rint(base + rng.normal(0, 2, base.shape)), 1, 254).astype(np.uint8))
    lv0 = np.stack(imgs)
    bank = [lv0, np.stack([zed.reduce2(i) for i in lv0]), np.stack([zed.reduce2(zed.reduce2(i)) for i in lv0])]
    net = train(bank, steps=60, batch=8, seed=0, width=8, coarse=True)
    path = tmp_path / "z.onnx"
    export(net, path)
    predict = onnx_predictor(path)
    px = np.repeat(imgs[0][..., None], 3, 2)
    with torch.no_grad():
        ref = net(torch.from_numpy(imgs[0][None, None, :64, :64].astype(np.float32))).numpy()
    assert np.allclose(predict(imgs[0][None, None, :64, :64].astype(np.float32)), ref, atol=1e-3)
    noisy = np.clip(px.astype(float) + rng.normal(0, 12, px.shape), 0, 255).astype(np.uint8)
    assert zed.image_stats(px, predict)["nll"] < zed.image_stats(noisy, predict)["nll"]
    assert zed.image_stats(px, predict)["nll"] < 8.0  # better than storing raw bytes
