"""DCGAN-style generator and spectrally normalised discriminator (Radford et al. 2016;
Miyato et al. 2018).

Generator: z ~ N(0, I) of ``nz`` dimensions, a 4x4 transposed convolution to 4x4, then up-sampling
stages with batch norm and ReLU halving the channels while doubling the side, and a final stage to
RGB with tanh. Up-sampling is nearest-neighbour plus a 3x3 convolution by default (fewer
checkerboard artefacts in short runs, Odena et al. 2016) or DCGAN's 4x4 stride-2 transposed
convolution with ``upsample="transpose"``. Discriminator: 4x4 stride-2 convolutions with
spectral normalisation and LeakyReLU(0.2) down to 4x4, then a 4x4 convolution to one logit.

Loss: hinge (default) or the non-saturating loss. Adam with betas (0.5, 0.999) as in DCGAN, lr 2e-4
for the generator and 4e-4 for the discriminator (two time-scale update rule, Heusel et al. 2017).
With a few hundred training images the discriminator memorises them quickly; differentiable
augmentation (Zhao et al. 2020, "DiffAugment": random brightness/saturation/contrast, translation by
up to 1/8 of the side and a cutout), applied identically to real and generated images before the
discriminator, is on by default. Samples come from an exponential moving average of the generator
whose batch-norm statistics are re-estimated from its own activations before sampling.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import spectral_norm

from verity.lab.models.base import Family


def _up(cin: int, cout: int, mode: str, bias: bool = False) -> nn.Module:
    if mode == "transpose":
        return nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=bias)
    if mode == "nearest":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, 1, 1, bias=bias))
    raise ValueError(f"upsample must be 'transpose' or 'nearest', got {mode!r}")


class Generator(nn.Module):
    def __init__(self, size: int = 64, nz: int = 128, ngf: int = 32, upsample: str = "nearest"):
        super().__init__()
        n_up = int(math.log2(size)) - 2  # 4 -> size
        chans = [ngf * min(8, 2 ** (n_up - 1 - i)) for i in range(n_up)]  # e.g. 8ngf, 4ngf, 2ngf, ngf
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, chans[0], 4, 1, 0, bias=False), nn.BatchNorm2d(chans[0]),
                                   nn.ReLU(True)]
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [_up(a, b, upsample), nn.BatchNorm2d(b), nn.ReLU(True)]
        layers += [_up(chans[-1], 3, upsample, bias=True), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.nz = nz
        for m in self.modules():
            if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.nz, 1, 1))


class Discriminator(nn.Module):
    def __init__(self, size: int = 64, ndf: int = 32):
        super().__init__()
        n_down = int(math.log2(size)) - 2  # size -> 4
        chans = [ndf * min(8, 2 ** i) for i in range(n_down)]
        layers: list[nn.Module] = []
        cin = 3
        for c in chans:
            layers += [spectral_norm(nn.Conv2d(cin, c, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
            cin = c
        layers.append(spectral_norm(nn.Conv2d(cin, 1, 4, 1, 0)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


def diff_augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Differentiable colour, translation and cutout augmentation of a (N, 3, H, W) batch in [-1, 1]."""
    n, _, h, w = x.shape
    dev = x.device

    def r(*shape):
        return torch.rand(shape, generator=gen).to(dev)

    x = x + (r(n, 1, 1, 1) - 0.5)  # brightness
    m = x.mean(1, keepdim=True)
    x = (x - m) * (r(n, 1, 1, 1) * 2) + m  # saturation
    m = x.mean((1, 2, 3), keepdim=True)
    x = (x - m) * (r(n, 1, 1, 1) + 0.5) + m  # contrast
    # translation by up to 1/8 of the side, zero padded
    sh, sw = h // 8, w // 8
    ty = (r(n) * (2 * sh + 1)).long() - sh
    tx = (r(n) * (2 * sw + 1)).long() - sw
    gy = torch.arange(h, device=dev)[None, :, None] - ty[:, None, None]
    gx = torch.arange(w, device=dev)[None, None, :] - tx[:, None, None]
    valid = ((gy >= 0) & (gy < h) & (gx >= 0) & (gx < w)).unsqueeze(1)
    gy, gx = gy.clamp(0, h - 1), gx.clamp(0, w - 1)
    idx = (gy * w + gx).view(n, 1, h * w).expand(n, x.shape[1], h * w)
    x = torch.gather(x.reshape(n, x.shape[1], h * w), 2, idx).view_as(x) * valid
    # cutout of half the side
    ch, cw = h // 2, w // 2
    cy = (r(n) * (h + 1 - ch % 2)).long()
    cx = (r(n) * (w + 1 - cw % 2)).long()
    yy = torch.arange(h, device=dev)[None, :, None]
    xx = torch.arange(w, device=dev)[None, None, :]
    cut = ((yy - cy[:, None, None]).abs() < ch // 2) & ((xx - cx[:, None, None]).abs() < cw // 2)
    return x * (~cut).unsqueeze(1)


class GAN(Family):
    name = "gan"
    DEFAULTS: dict[str, Any] = {
        "size": 64,
        "steps": 3000,
        "batch": 32,
        "lr": 2e-4,
        "lr_d": 4e-4,
        "betas": [0.5, 0.999],
        "nz": 128,
        "ngf": 32,
        "ndf": 32,
        "loss": "hinge",
        "upsample": "nearest",
        "diffaug": True,
        "ema": 0.999,
    }

    def build(self) -> None:
        c = self.cfg
        if c["loss"] not in ("hinge", "ns"):
            raise ValueError(f"gan loss must be 'hinge' or 'ns', got {c['loss']!r}")
        self.nets["g"] = Generator(c["size"], c["nz"], c["ngf"], c["upsample"])
        self.nets["d"] = Discriminator(c["size"], c["ndf"])
        b = tuple(c["betas"])
        self.opts["g"] = torch.optim.Adam(self.nets["g"].parameters(), lr=c["lr"], betas=b)
        self.opts["d"] = torch.optim.Adam(self.nets["d"].parameters(), lr=c["lr_d"], betas=b)
        self.add_ema("g")

    def _aug(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return diff_augment(x, gen) if self.cfg["diffaug"] else x

    def train_step(self, x: torch.Tensor, gen: torch.Generator) -> dict[str, float]:
        g, d = self.nets["g"], self.nets["d"]
        g.train()
        d.train()
        x = x.to(self.device)
        n = x.shape[0]
        z = torch.randn(n, self.cfg["nz"], generator=gen).to(self.device)
        fake = g(z)
        # discriminator
        real_logit = d(self._aug(x, gen))
        fake_logit = d(self._aug(fake.detach(), gen))
        if self.cfg["loss"] == "hinge":
            loss_d = F.relu(1.0 - real_logit).mean() + F.relu(1.0 + fake_logit).mean()
        else:
            loss_d = F.softplus(-real_logit).mean() + F.softplus(fake_logit).mean()
        self.opts["d"].zero_grad(set_to_none=True)
        loss_d.backward()
        self.opts["d"].step()
        # generator
        for p in d.parameters():
            p.requires_grad_(False)
        gl = d(self._aug(fake, gen))
        loss_g = -gl.mean() if self.cfg["loss"] == "hinge" else F.softplus(-gl).mean()
        self.opts["g"].zero_grad(set_to_none=True)
        loss_g.backward()
        self.opts["g"].step()
        for p in d.parameters():
            p.requires_grad_(True)
        self.update_ema("g", self.cfg["ema"])
        return {"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach()),
                "d_real": float(real_logit.detach().mean()), "d_fake": float(fake_logit.detach().mean())}

    @torch.no_grad()
    def standing_stats(self, batches: int = 8, size: int = 64) -> None:
        """Re-estimate the batch-norm statistics of the averaged generator from its own activations
        ("standing statistics", Brock et al. 2019): the running statistics of the trained generator
        do not match the averaged weights. Uses fixed noise, so it is deterministic."""
        g = self.ema["g"]
        bns = [m for m in g.modules() if isinstance(m, nn.BatchNorm2d)]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        g.train()
        zg = torch.Generator().manual_seed(0)
        for _ in range(batches):
            g(torch.randn(size, self.cfg["nz"], generator=zg).to(self.device))
        for m in bns:
            m.momentum = 0.1
        g.eval()
        self._standing_step = self.step

    @torch.no_grad()
    def sample(self, n: int, gen: torch.Generator, **kw: Any) -> torch.Tensor:
        if getattr(self, "_standing_step", None) != self.step:
            self.standing_stats()
        z = torch.randn(n, self.cfg["nz"], generator=gen).to(self.device)
        g = self.ema["g"]
        g.eval()
        return g(z).clamp(-1, 1)


FAMILY = GAN
