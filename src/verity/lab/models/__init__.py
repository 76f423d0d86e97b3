"""The lab's generator families, timm-style: ``list_families()``, ``create_family(name, **cfg)``.

Each family module defines a :class:`~verity.lab.models.base.Family` subclass with its default
configuration next to it (``DEFAULTS``). Importing this package does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

#: family name -> module that defines it
FAMILIES = {
    "autoencoder": "verity.lab.models.autoencoder",
    "gan": "verity.lab.models.gan",
    "diffusion": "verity.lab.models.diffusion",
}


def list_families() -> list[str]:
    return list(FAMILIES)


def family_class(name: str):
    try:
        mod = importlib.import_module(FAMILIES[name])
    except KeyError:
        raise KeyError(f"unknown lab family {name!r}; known: {', '.join(FAMILIES)}") from None
    return mod.FAMILY


def default_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The family's defaults with ``overrides`` applied (``None`` values are ignored)."""
    cls = family_class(name)
    cfg = dict(cls.DEFAULTS)
    unknown = [k for k in overrides if k not in cfg]
    if unknown:
        raise KeyError(f"{name}: unknown option(s) {unknown}; known: {sorted(cfg)}")
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg


def stored_config(name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """A run's stored configuration completed for the current code: options the run predates get
    their ``LEGACY`` value (the behaviour the run was trained with), not today's default."""
    cls = family_class(name)
    out = dict(cfg)
    for k, v in getattr(cls, "LEGACY", {}).items():
        out.setdefault(k, v)
    return out


def create_family(name: str, device: str = "cpu", **cfg: Any):
    """Build a family (models + optimisers) from its defaults updated with ``cfg``."""
    return family_class(name)(default_config(name, **cfg), device=device)
