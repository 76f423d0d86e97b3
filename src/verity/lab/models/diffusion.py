"""DDPM (Ho et al. 2020) with a small U-Net, sampled with DDIM (Song et al. 2021).

Forward process: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, T = 1000, linear betas 1e-4..0.02
(``schedule="linear"``) or the cosine schedule of Nichol & Dhariwal 2021 (``schedule="cosine"``).
Loss: mean squared error between the U-Net's output and its target at a uniformly drawn t: the clean
image x_0 (``pred="x0"``, the default), the noise eps (``pred="eps"``, Ho et al.) or the velocity
v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0 (``pred="v"``, Salimans & Ho 2022); the sampler converts
any of them to the implied x_0 and eps. Why x0 by default: with the one or two thousand steps a
CPU affords, eps- and v-predicting networks still leave per-pixel noise in their x_0 estimates at
moderate noise levels, and the sampler carries it to the end (noisy samples after 1000 steps), while
an x_0-predicting network regresses towards the conditional mean: blurry but clean images within a
few hundred steps (docs/lab.md). Gradients are clipped to a norm of ``clip`` (1.0).

U-Net: the image is first folded into ``patch`` x ``patch`` patches (pixel unshuffle: 64x64x3 becomes
16x16x48 with the default ``patch=4``, 32x32x12 with ``patch=2``; much cheaper on a CPU; unfolded again
at the output),
then a 3x3 stem, per resolution level ``nres`` residual blocks conditioned on a sinusoidal time
embedding (through an MLP), stride-2 convolutions down and nearest up-sampling plus convolution up,
skip connections concatenated, optional self-attention at the levels listed in ``attn`` (given as
feature-map sides after patching), GroupNorm + SiLU everywhere. Samples come from an exponential moving average of
the weights. DDIM takes ``ddim_steps`` (default 50) network evaluations; ``eta`` (default 1.0) sets
how much fresh noise each step adds: ``eta = 0`` is the deterministic DDIM ODE sampler, ``eta = 1``
the stochastic DDIM that matches DDPM's posterior variance on the sub-sequence. For an
eps-predicting model trained a few thousand CPU steps, ``eta = 0`` gave noisy, over-saturated samples
(small errors of the noise prediction are never corrected) and ``eta = 1`` smooth ones (see
docs/lab.md), hence the default. ``sampler="ddpm"`` runs all T ancestral steps. Every sampler
returns the training image exactly when the prediction (of any kind) is exact
(tests/lab/test_diffusion.py).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from verity.lab.models.base import Family, ResBlock, groups, timestep_embedding


def beta_schedule(kind: str = "linear", T: int = 1000) -> np.ndarray:
    """Noise schedule betas (T,) float64: ``linear`` 1e-4..0.02 or ``cosine`` (s = 0.008, beta <= 0.999)."""
    if kind == "linear":
        return np.linspace(1e-4, 0.02, T, dtype=np.float64)
    if kind == "cosine":
        s = 0.008
        steps = np.arange(T + 1, dtype=np.float64) / T
        f = np.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        abar = f / f[0]
        return np.clip(1 - abar[1:] / abar[:-1], 0, 0.999)
    raise ValueError(f"schedule must be 'linear' or 'cosine', got {kind!r}")


class Attention(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups(ch), ch)
        self.qkv = nn.Conv2d(ch, ch * 3, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor, e: torch.Tensor | None = None) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, c, h * w).unbind(1)
        a = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c), dim=-1)  # (n, hw, hw)
        out = (v @ a.transpose(1, 2)).reshape(n, c, h, w)
        return x + self.proj(out)


class UNet(nn.Module):
    def __init__(self, size: int = 64, ch: int = 32, mults: tuple[int, ...] = (1, 2, 2, 2), nres: int = 1,
                 attn: tuple[int, ...] = (), dropout: float = 0.0, patch: int = 1):
        super().__init__()
        self.ch = ch
        self.patch = int(patch)
        size = size // self.patch
        cin = 3 * self.patch ** 2
        emb = ch * 4
        self.temb = nn.Sequential(nn.Linear(ch, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.stem = nn.Conv2d(cin, ch, 3, padding=1)
        self.down = nn.ModuleList()
        chans = [ch]
        c = ch
        side = size
        for i, m in enumerate(mults):
            for _ in range(nres):
                blk = nn.ModuleList([ResBlock(c, ch * m, emb, dropout)])
                c = ch * m
                if side in attn:
                    blk.append(Attention(c))
                self.down.append(blk)
                chans.append(c)
            if i != len(mults) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(c, c, 3, stride=2, padding=1)]))
                chans.append(c)
                side //= 2
        self.mid = nn.ModuleList([ResBlock(c, c, emb, dropout), Attention(c) if side in attn else nn.Identity(),
                                  ResBlock(c, c, emb, dropout)])
        self.up = nn.ModuleList()
        for i, m in reversed(list(enumerate(mults))):
            for _ in range(nres + 1):
                blk = nn.ModuleList([ResBlock(c + chans.pop(), ch * m, emb, dropout)])
                c = ch * m
                if side in attn:
                    blk.append(Attention(c))
                self.up.append(blk)
            if i != 0:
                self.up.append(nn.ModuleList([nn.Upsample(scale_factor=2, mode="nearest"),
                                              nn.Conv2d(c, c, 3, padding=1)]))
                side *= 2
        self.out = nn.Sequential(nn.GroupNorm(groups(c), c), nn.SiLU(), nn.Conv2d(c, cin, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        e = self.temb(timestep_embedding(t, self.ch))
        if self.patch > 1:
            x = F.pixel_unshuffle(x, self.patch)
        h = self.stem(x)
        hs = [h]
        for blk in self.down:
            if isinstance(blk[0], ResBlock):
                h = blk[0](h, e)
                for extra in blk[1:]:
                    h = extra(h)
            else:
                h = blk[0](h)
            hs.append(h)
        h = self.mid[0](h, e)
        h = self.mid[1](h)
        h = self.mid[2](h, e)
        for blk in self.up:
            if isinstance(blk[0], ResBlock):
                h = blk[0](torch.cat([h, hs.pop()], dim=1), e)
                for extra in blk[1:]:
                    h = extra(h)
            else:
                h = blk[1](blk[0](h))
        h = self.out(h)
        return F.pixel_shuffle(h, self.patch) if self.patch > 1 else h


class Diffusion(Family):
    name = "diffusion"
    DEFAULTS: dict[str, Any] = {
        "size": 64,
        "steps": 2000,
        "batch": 32,
        "lr": 4e-4,
        "ch": 64,
        "mults": [1, 2],
        "nres": 1,
        "patch": 4,
        "attn": [8],
        "dropout": 0.0,
        "T": 1000,
        "schedule": "cosine",
        "pred": "x0",
        "clip": 1.0,
        "ema": 0.998,
        "ddim_steps": 50,
        "eta": 1.0,
        "sampler": "ddim",
    }
    #: values of options added later, for runs whose stored configuration predates them
    LEGACY: dict[str, Any] = {"pred": "eps", "clip": 0.0}

    def build(self) -> None:
        c = self.cfg
        if c["pred"] not in ("eps", "v", "x0"):
            raise ValueError(f"diffusion pred must be 'eps', 'v' or 'x0', got {c['pred']!r}")
        self.nets["unet"] = UNet(c["size"], c["ch"], tuple(c["mults"]), c["nres"], tuple(c["attn"]), c["dropout"],
                                  c["patch"])
        self.opts["unet"] = torch.optim.Adam(self.nets["unet"].parameters(), lr=c["lr"])
        self.add_ema("unet")
        betas = beta_schedule(c["schedule"], c["T"])
        self.betas = torch.tensor(betas, dtype=torch.float32)
        self.abar = torch.tensor(np.cumprod(1.0 - betas), dtype=torch.float32)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        a = self.abar.to(x0.device)[t].view(-1, 1, 1, 1)
        return a.sqrt() * x0 + (1 - a).sqrt() * eps

    def train_step(self, x: torch.Tensor, gen: torch.Generator) -> dict[str, float]:
        net = self.nets["unet"]
        net.train()
        x = x.to(self.device)
        n = x.shape[0]
        t = torch.randint(0, self.cfg["T"], (n,), generator=gen).to(self.device)
        eps = torch.randn(x.shape, generator=gen).to(self.device)
        if self.cfg["pred"] == "v":
            a = self.abar.to(self.device)[t].view(-1, 1, 1, 1)
            target = a.sqrt() * eps - (1 - a).sqrt() * x
        elif self.cfg["pred"] == "x0":
            target = x
        else:
            target = eps
        loss = F.mse_loss(net(self.q_sample(x, t, eps), t), target)
        opt = self.opts["unet"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.get("clip", 0.0):
            torch.nn.utils.clip_grad_norm_(net.parameters(), float(self.cfg["clip"]))
        opt.step()
        self.update_ema("unet", self.cfg["ema"])
        return {"mse": float(loss.detach())}

    def _x0(self, out: torch.Tensor, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """The clipped x_0 implied by the network output at noise level ``a`` = abar_t."""
        pred = self.cfg.get("pred", "eps")
        if pred == "v":
            x0 = a.sqrt() * x - (1 - a).sqrt() * out
        elif pred == "x0":
            x0 = out
        else:
            x0 = (x - (1 - a).sqrt() * out) / a.sqrt()
        return x0.clamp(-1, 1)

    def size_multiple(self) -> int:
        """Sample sides must be multiples of this (patch size times the U-Net's total down-sampling)."""
        return int(self.cfg.get("patch", 1)) * 2 ** (len(self.cfg["mults"]) - 1)

    @torch.no_grad()
    def sample(self, n: int, gen: torch.Generator, steps: int | None = None, sampler: str | None = None,
               eta: float | None = None, size: int | None = None, **kw: Any) -> torch.Tensor:
        """``n`` samples in [-1, 1], (n, 3, size, size). The U-Net is fully convolutional, so ``size`` may
        differ from the trained side (a multiple of :meth:`size_multiple`); content is only learned at
        the trained side, but every pixel is still made by the network (useful as detector test data)."""
        net = self.ema["unet"]
        net.eval()
        s = int(size or self.cfg["size"])
        if s < 1 or s % self.size_multiple():
            raise ValueError(f"sample size must be a positive multiple of {self.size_multiple()}, got {s}")
        x = torch.randn(n, 3, s, s, generator=gen).to(self.device)
        sampler = sampler or self.cfg["sampler"]
        T = self.cfg["T"]
        abar = self.abar.to(self.device)
        if sampler == "ddpm":
            betas = self.betas.to(self.device)
            for t in range(T - 1, -1, -1):
                tt = torch.full((n,), t, device=self.device, dtype=torch.long)
                x0 = self._x0(net(x, tt), x, abar[t])
                prev = abar[t - 1] if t > 0 else torch.tensor(1.0, device=self.device)
                mean = (prev.sqrt() * betas[t] / (1 - abar[t])) * x0 + \
                       ((1 - betas[t]).sqrt() * (1 - prev) / (1 - abar[t])) * x
                if t > 0:
                    var = betas[t] * (1 - prev) / (1 - abar[t])
                    x = mean + var.sqrt() * torch.randn(x.shape, generator=gen).to(self.device)
                else:
                    x = mean
            return x.clamp(-1, 1)
        if sampler != "ddim":
            raise ValueError(f"sampler must be 'ddim' or 'ddpm', got {sampler!r}")
        k = int(steps or self.cfg["ddim_steps"])
        eta = float(self.cfg.get("eta", 1.0) if eta is None else eta)
        ts = np.unique(np.linspace(0, T - 1, max(2, k)).round().astype(int))[::-1]
        for i, t in enumerate(ts):
            tt = torch.full((n,), int(t), device=self.device, dtype=torch.long)
            a = abar[t]
            x0 = self._x0(net(x, tt), x, a)
            eps = (x - a.sqrt() * x0) / (1 - a).sqrt()  # re-derive eps after clipping x0
            if i == len(ts) - 1:
                x = x0
                break
            ap = abar[int(ts[i + 1])]
            sigma = eta * ((1 - ap) / (1 - a) * (1 - a / ap)).clamp_min(0).sqrt()
            x = ap.sqrt() * x0 + (1 - ap - sigma ** 2).clamp_min(0).sqrt() * eps
            if eta > 0:
                x = x + sigma * torch.randn(x.shape, generator=gen).to(self.device)
        return x.clamp(-1, 1)


FAMILY = Diffusion
