"""Convolutional autoencoder (optionally a VAE) with a spatial latent.

Encoder: a 3x3 stem, then per level a residual block (SiLU, no normalisation, so that the output of
a tile does not depend on the tile's statistics) and a 4x4 stride-2 convolution; a 1x1 convolution
maps to ``latent`` channels (twice that for the VAE: mean and log-variance). The decoder mirrors it
with learned up-sampling (4x4 stride-2 transposed convolutions, or nearest up-sampling plus a 3x3
convolution with ``upsample="nearest"``). The network is fully convolutional, so it reconstructs
images of any size (see :func:`verity.lab.sample.reconstruct`), down-sampling by ``2 ** len(mults)``.

Loss: L1 reconstruction, plus ``kl_weight`` times the KL divergence to N(0, I) per latent element
for the VAE (Kingma & Welling 2014). Sampling decodes latents drawn from N(0, I) (VAE) or, for the
plain autoencoder, from a diagonal Gaussian fitted to the training latents (running mean and
variance per latent element), which gives textures rather than scenes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from verity.lab.models.base import Family, ResBlock


class Encoder(nn.Module):
    def __init__(self, ch: int, mults: tuple[int, ...], latent: int):
        super().__init__()
        self.stem = nn.Conv2d(3, ch, 3, padding=1)
        layers: list[nn.Module] = []
        c = ch
        for m in mults:
            layers += [ResBlock(c, ch * m, norm=False), nn.Conv2d(ch * m, ch * m, 4, stride=2, padding=1)]
            c = ch * m
        self.body = nn.Sequential(*layers)
        self.out = nn.Sequential(ResBlock(c, c, norm=False), nn.SiLU(), nn.Conv2d(c, latent, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(self.stem(x)))


class Decoder(nn.Module):
    def __init__(self, ch: int, mults: tuple[int, ...], latent: int, upsample: str = "transpose"):
        super().__init__()
        c = ch * mults[-1]
        self.stem = nn.Sequential(nn.Conv2d(latent, c, 3, padding=1), ResBlock(c, c, norm=False))
        layers: list[nn.Module] = []
        for m in reversed(mults):
            cout = ch * m
            if upsample == "transpose":
                up: nn.Module = nn.ConvTranspose2d(c, cout, 4, stride=2, padding=1)
            elif upsample == "nearest":
                up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, cout, 3, padding=1))
            else:
                raise ValueError(f"upsample must be 'transpose' or 'nearest', got {upsample!r}")
            layers += [up, ResBlock(cout, cout, norm=False)]
            c = cout
        self.body = nn.Sequential(*layers)
        self.out = nn.Sequential(nn.SiLU(), nn.Conv2d(c, 3, 3, padding=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(self.stem(z)))


class AutoencoderNet(nn.Module):
    """Encoder + decoder. ``forward`` returns (reconstruction, mean, logvar or None)."""

    def __init__(self, ch: int = 16, mults: tuple[int, ...] = (1, 2), latent: int = 16, vae: bool = False,
                 upsample: str = "transpose"):
        super().__init__()
        self.vae = vae
        self.latent = latent
        self.factor = 2 ** len(mults)
        self.encoder = Encoder(ch, tuple(mults), latent * (2 if vae else 1))
        self.decoder = Decoder(ch, tuple(mults), latent, upsample)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.encoder(x)
        if self.vae:
            mu, logvar = h.chunk(2, dim=1)
            return mu, logvar.clamp(-30.0, 20.0)
        return h, None

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor, gen: torch.Generator | None = None):
        mu, logvar = self.encode(x)
        z = mu
        if logvar is not None and self.training:
            eps = torch.randn(mu.shape, generator=gen, device=mu.device, dtype=mu.dtype)
            z = mu + torch.exp(0.5 * logvar) * eps
        return self.decode(z), mu, logvar


class Autoencoder(Family):
    name = "autoencoder"
    DEFAULTS: dict[str, Any] = {
        "size": 64,
        "steps": 2000,
        "batch": 8,
        "lr": 2e-3,
        "ch": 16,
        "mults": [1, 2],
        "latent": 16,
        "vae": False,
        "kl_weight": 1e-3,
        "upsample": "transpose",
    }

    def build(self) -> None:
        c = self.cfg
        self.nets["ae"] = AutoencoderNet(c["ch"], tuple(c["mults"]), c["latent"], bool(c["vae"]), c["upsample"])
        self.opts["ae"] = torch.optim.Adam(self.nets["ae"].parameters(), lr=c["lr"], betas=(0.9, 0.99))
        lat = c["size"] // (2 ** len(c["mults"]))
        self.lat_mean = torch.zeros(c["latent"], lat, lat)
        self.lat_var = torch.ones(c["latent"], lat, lat)

    def train_step(self, x: torch.Tensor, gen: torch.Generator) -> dict[str, float]:
        net = self.nets["ae"]
        net.train()
        x = x.to(self.device)
        rec, mu, logvar = net(x, gen)
        l1 = F.l1_loss(rec, x)
        loss = l1
        out = {"l1": float(l1.detach())}
        if logvar is not None:
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).mean()
            loss = loss + self.cfg["kl_weight"] * kl
            out["kl"] = float(kl.detach())
        opt = self.opts["ae"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():  # running latent statistics for sampling the plain autoencoder
            m = mu.detach().cpu()
            if m.shape[1:] == self.lat_mean.shape:
                d = min(0.99, (1.0 + self.step) / (10.0 + self.step))
                self.lat_mean.mul_(d).add_(m.mean(0), alpha=1 - d)
                self.lat_var.mul_(d).add_(m.var(0, unbiased=False) + (m.mean(0) - self.lat_mean).pow(2), alpha=1 - d)
        out["loss"] = float(loss.detach())
        return out

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic reconstruction (the VAE uses its mean latent)."""
        net = self.nets["ae"]
        net.eval()
        return net(x.to(self.device))[0].clamp(-1, 1)

    @torch.no_grad()
    def sample(self, n: int, gen: torch.Generator, **kw: Any) -> torch.Tensor:
        net = self.nets["ae"]
        net.eval()
        shape = (n, *self.lat_mean.shape)
        eps = torch.randn(shape, generator=gen)
        z = eps if self.cfg["vae"] else self.lat_mean + self.lat_var.clamp_min(1e-8).sqrt() * eps
        return net.decode(z.to(self.device)).clamp(-1, 1)

    @torch.no_grad()
    def preview(self, real: torch.Tensor | None, n: int, gen: torch.Generator) -> torch.Tensor:
        """Rows of held-out originals each followed by a row of their reconstructions."""
        if real is None:
            return self.sample(n, gen)
        cols = max(1, int(round(n ** 0.5)))
        real = real[: (len(real) // cols) * cols] if len(real) >= cols else real
        rec = self.reconstruct(real).cpu()
        rows = []
        for i in range(0, len(real), cols):
            rows += [real[i:i + cols], rec[i:i + cols]]
        return torch.cat(rows)[:n] if len(rows) else real

    def extra_state(self) -> dict[str, Any]:
        return {"lat_mean": self.lat_mean.clone(), "lat_var": self.lat_var.clone()}

    def load_extra_state(self, st: dict[str, Any]) -> None:
        if "lat_mean" in st:
            self.lat_mean = st["lat_mean"].clone()
            self.lat_var = st["lat_var"].clone()


FAMILY = Autoencoder
