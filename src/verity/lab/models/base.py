"""Base class of the lab's generator families and shared layers (torch is imported here)."""

from __future__ import annotations

import copy
import math
from typing import Any, ClassVar

import torch
from torch import nn


class Family:
    """A generator family: its networks, optimisers and one training step.

    Subclasses set ``name`` and ``DEFAULTS`` and implement :meth:`build`, :meth:`train_step` and
    :meth:`sample`. Networks go in ``self.nets`` and optimisers in ``self.opts`` (dicts), so that
    :meth:`state_dict` captures everything a resumed run needs.

    Images are float tensors (N, 3, H, W) in [-1, 1].
    """

    name: ClassVar[str] = ""
    DEFAULTS: ClassVar[dict[str, Any]] = {}
    #: option -> the behaviour a run had before the option existed (used when loading old runs)
    LEGACY: ClassVar[dict[str, Any]] = {}

    def __init__(self, cfg: dict[str, Any], device: str = "cpu"):
        self.cfg = dict(cfg)
        self.device = torch.device(device)
        self.nets: dict[str, nn.Module] = {}
        self.opts: dict[str, torch.optim.Optimizer] = {}
        self.ema: dict[str, nn.Module] = {}
        self.step = 0
        self.build()
        for n in self.nets.values():
            n.to(self.device)
        for n in self.ema.values():
            n.to(self.device)

    # -- to implement -------------------------------------------------------------------------
    def build(self) -> None:
        raise NotImplementedError

    def train_step(self, x: torch.Tensor, gen: torch.Generator) -> dict[str, float]:
        """One optimisation step on a batch; returns named scalar losses."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n: int, gen: torch.Generator, **kw: Any) -> torch.Tensor:
        """``n`` new images (N, 3, size, size) in [-1, 1], random numbers drawn from ``gen``."""
        raise NotImplementedError

    @torch.no_grad()
    def preview(self, real: torch.Tensor | None, n: int, gen: torch.Generator) -> torch.Tensor:
        """Images for the checkpoint grid: ``n`` samples (the autoencoder shows reconstructions)."""
        return self.sample(n, gen)

    # -- shared -------------------------------------------------------------------------------
    def add_ema(self, key: str) -> None:
        m = copy.deepcopy(self.nets[key])
        for p in m.parameters():
            p.requires_grad_(False)
        m.eval()
        self.ema[key] = m

    @torch.no_grad()
    def update_ema(self, key: str, decay: float) -> None:
        # warm-up so that short runs are not dominated by the random initialisation
        d = min(decay, (1.0 + self.step) / (10.0 + self.step))
        for pe, p in zip(self.ema[key].parameters(), self.nets[key].parameters()):
            pe.mul_(d).add_(p.detach(), alpha=1.0 - d)
        for be, b in zip(self.ema[key].buffers(), self.nets[key].buffers()):
            be.copy_(b)

    def n_params(self) -> dict[str, int]:
        return {k: sum(p.numel() for p in m.parameters()) for k, m in self.nets.items()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "family": self.name,
            "cfg": self.cfg,
            "step": self.step,
            "nets": {k: m.state_dict() for k, m in self.nets.items()},
            "ema": {k: m.state_dict() for k, m in self.ema.items()},
            "opts": {k: o.state_dict() for k, o in self.opts.items()},
            "extra": self.extra_state(),
        }

    def load_state_dict(self, sd: dict[str, Any], with_optimizers: bool = True) -> None:
        for k, m in self.nets.items():
            m.load_state_dict(sd["nets"][k])
        for k, m in self.ema.items():
            m.load_state_dict(sd["ema"][k])
        if with_optimizers:
            for k, o in self.opts.items():
                o.load_state_dict(sd["opts"][k])
        self.step = int(sd["step"])
        self.load_extra_state(sd.get("extra") or {})

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, st: dict[str, Any]) -> None:
        pass

    def train(self) -> None:
        for m in self.nets.values():
            m.train()

    def eval(self) -> None:
        for m in self.nets.values():
            m.eval()


def groups(ch: int) -> int:
    """GroupNorm groups for ``ch`` channels: at most 8 and at least 4 channels per group."""
    for g in (8, 4, 2, 1):
        if ch % g == 0 and ch // g >= 4:
            return g
    return 1


class ResBlock(nn.Module):
    """(GroupNorm-)SiLU-conv residual block, optionally modulated by an embedding (diffusion time).

    ``norm=False`` drops the normalisation: the autoencoder uses that so that a tile's output does not
    depend on the statistics of the whole tile (tiled reconstruction) and global colour survives.
    """

    def __init__(self, cin: int, cout: int, emb: int = 0, dropout: float = 0.0, norm: bool = True):
        super().__init__()
        self.n1 = nn.GroupNorm(groups(cin), cin) if norm else nn.Identity()
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb, cout) if emb else None
        self.n2 = nn.GroupNorm(groups(cout), cout) if norm else nn.Identity()
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, e: torch.Tensor | None = None) -> torch.Tensor:
        h = self.c1(nn.functional.silu(self.n1(x)))
        if self.emb is not None and e is not None:
            h = h + self.emb(e)[:, :, None, None]
        h = self.c2(self.drop(nn.functional.silu(self.n2(h))))
        return h + self.skip(x)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps (N,) -> (N, dim) (Vaswani et al. 2017)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    a = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(a), torch.sin(a)], dim=1)
