"""The detector registry: ``register_detector``, ``list_detectors``, ``create_detector``.

Detectors live one per file under :mod:`verity.detectors`; importing that package imports every
module in it, and each module registers its class with the :func:`register_detector` decorator.
"""

from __future__ import annotations

from typing import Any, ClassVar

from verity.core.types import CLASSES, Finding, Sample

_REGISTRY: dict[str, type["Detector"]] = {}


class Detector:
    """Base class of every detector.

    Subclasses set the class attributes and implement :meth:`run`; numeric work belongs in
    :mod:`verity.ops`. ``run`` must be deterministic and must not raise on any image that
    :func:`verity.core.io.load_sample` returned: it abstains (``score=None``) instead.

    Class attributes
    ----------------
    name : str
        Registered name (snake_case), also the key of its finding and heatmap.
    kind : str
        Report group, one of :data:`verity.core.types.KINDS`.
    labels : tuple of str
        Classes its score speaks for.
    weight : float
        Default weight of ``logit(score)`` in the hand-set fusion (see :mod:`verity.core.fusion`).
    default : bool
        Whether ``verity analyze`` runs it without being asked.
    requires : tuple of str
        Optional modules it needs; when one is missing, :meth:`available` is False and the pipeline
        skips it with a note.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "metadata"
    labels: ClassVar[tuple[str, ...]] = ()
    weight: ClassVar[float] = 1.0
    default: ClassVar[bool] = True
    requires: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **options: Any) -> None:
        self.options = options

    @classmethod
    def available(cls) -> bool:
        import importlib.util

        return all(importlib.util.find_spec(m) is not None for m in cls.requires)

    def accepts(self, sample: Sample) -> bool:  # noqa: ARG002 - default accepts everything
        return True

    def run(self, sample: Sample) -> Finding:
        raise NotImplementedError

    def finding(self, score: float | None, evidence: list[str] | None = None, **kw: Any) -> Finding:
        """Shortcut that fills ``detector``, ``kind`` and ``labels`` from the class."""
        kw.setdefault("labels", list(self.labels))
        return Finding(detector=self.name, score=score, evidence=evidence or [], kind=self.kind, **kw)

    def abstain(self, reason: str, **details: Any) -> Finding:
        return self.finding(None, [reason] if reason else [], details=details)


def register_detector(cls: type[Detector]) -> type[Detector]:
    """Class decorator that adds a detector to the registry under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    bad = [c for c in cls.labels if c not in CLASSES]
    if bad:
        raise ValueError(f"{cls.name}: unknown labels {bad}")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"detector {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    import verity.detectors  # noqa: F401  (imports every detector module)


def list_detectors(default_only: bool = False) -> list[str]:
    """Names of registered detectors, sorted."""
    _discover()
    return sorted(n for n, c in _REGISTRY.items() if c.default or not default_only)


def get_detector_class(name: str) -> type[Detector]:
    _discover()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown detector {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def create_detector(name: str, **options: Any) -> Detector:
    """Instantiate a registered detector by name."""
    return get_detector_class(name)(**options)
