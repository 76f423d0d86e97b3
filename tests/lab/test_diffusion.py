"""The samplers against an oracle noise predictor: for data made of one image x*, the exact
eps-prediction is (x_t - sqrt(abar_t) x*) / sqrt(1 - abar_t), and every sampler must return x*."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from verity.lab.models import create_family
from verity.lab.models.diffusion import beta_schedule


class Oracle(torch.nn.Module):
    """Exact eps- or v-prediction for data made of the single image ``target``."""

    def __init__(self, target, abar, pred="eps"):
        super().__init__()
        self.target, self.abar, self.pred = target, abar, pred
        self.dummy = torch.nn.Parameter(torch.zeros(()))  # so that a training step can back-propagate

    def forward(self, x, t):
        a = self.abar[t].view(-1, 1, 1, 1)
        eps = (x - a.sqrt() * self.target) / (1 - a).sqrt()
        if self.pred == "x0":
            out = self.target.expand_as(x)
        else:
            out = eps if self.pred == "eps" else a.sqrt() * eps - (1 - a).sqrt() * self.target
        return out + 0.0 * self.dummy


@pytest.mark.parametrize("pred", ["eps", "v", "x0"])
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("kw", [{"steps": 10, "eta": 0.0}, {"steps": 25, "eta": 1.0}, {"sampler": "ddpm"}])
def test_samplers_recover_single_image(schedule, kw, pred):
    fam = create_family("diffusion", size=16, ch=8, mults=[1], attn=[], patch=1, T=200, schedule=schedule, pred=pred)
    g = torch.Generator().manual_seed(0)
    target = torch.rand(1, 3, 16, 16, generator=g) * 1.6 - 0.8
    fam.ema["unet"] = Oracle(target, fam.abar, pred)
    out = fam.sample(3, torch.Generator().manual_seed(1), **kw)
    assert out.shape == (3, 3, 16, 16)
    assert float((out - target).abs().max()) < 2e-3


def test_schedules():
    lin, cos = beta_schedule("linear"), beta_schedule("cosine")
    assert lin.shape == cos.shape == (1000,)
    assert lin[0] == pytest.approx(1e-4) and lin[-1] == pytest.approx(0.02)
    abar = np.cumprod(1 - cos)
    assert 0.99 < abar[0] <= 1 and abar[-1] < 1e-4 and np.all(np.diff(abar) < 0)
    with pytest.raises(ValueError):
        beta_schedule("sigmoid")


def test_q_sample_statistics():
    fam = create_family("diffusion", size=16, ch=8, mults=[1], attn=[], patch=1)
    x0 = torch.full((4000, 1, 1, 1), 0.5)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    t = torch.full((4000,), 500)
    xt = fam.q_sample(x0, t, eps)
    a = float(fam.abar[500])
    assert float(xt.mean()) == pytest.approx(np.sqrt(a) * 0.5, abs=0.05)
    assert float(xt.std()) == pytest.approx(np.sqrt(1 - a), abs=0.05)


def test_training_target_matches_pred():
    """The training target matches the parameterisation: zero loss for the exact predictor of the
    configured kind, non-zero for the others."""
    target = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    x = target.expand(4, -1, -1, -1)
    cases = [(cfg, pred, cfg == pred) for cfg in ("eps", "v", "x0") for pred in ("eps", "v", "x0")]
    for cfg, pred, zero in cases:
        fam = create_family("diffusion", size=16, ch=8, mults=[1], attn=[], patch=1, T=200, pred=cfg)
        fam.nets["unet"] = Oracle(target, fam.abar, pred)
        fam.opts["unet"] = torch.optim.SGD(fam.nets["unet"].parameters(), lr=0.0)
        fam.ema["unet"] = Oracle(target, fam.abar, pred)
        fam.update_ema = lambda *a, **k: None
        fam.cfg["clip"] = 0.0
        loss = fam.train_step(x, torch.Generator().manual_seed(2))["mse"]
        assert (loss < 1e-8) == zero, (cfg, pred, loss)
