"""How probabilities are written for people: one set of rules for the CLI, the explanations, the
HTML report and the web page (``web/static/app.js`` mirrors :func:`format_probability` and
:func:`format_interval`; a test checks that both give the same text).

A fused probability is an estimate, never a certainty, so it is never shown as 0 % or 100 %:
below 1 % it reads ``<1%``, above 99 % ``>99%``, and everything else is rounded to a whole
percent in 1..99. The 90 % interval that goes with it (from the calibration data, see
:meth:`verity.core.fusion.FusionModel.interval`) is written the same way, e.g.
``edited 91% (90% interval 78-97%)``.
"""

from __future__ import annotations

import math
from typing import Any

#: Shown below this probability: ``<1%``; above ``1 - LOW``: ``>99%``.
LOW = 0.01


def percent_number(p: float) -> str:
    """The percent figure of ``p`` without the sign: ``"<1"``, ``">99"`` or ``"1"`` .. ``"99"``."""
    p = float(p)
    if not math.isfinite(p):
        return "?"
    if p < LOW:
        return "<1"
    if p > 1.0 - LOW:
        return ">99"
    return str(min(99, max(1, int(math.floor(100.0 * p + 0.5)))))


def format_probability(p: float) -> str:
    """``0.9999 -> ">99%"``, ``0.0001 -> "<1%"``, ``0.912 -> "91%"``; never ``0%`` or ``100%``."""
    return percent_number(p) + "%"


def format_interval(low: float, high: float, level: float = 0.9) -> str:
    """``"90% interval 78-97%"``; bounds written like :func:`format_probability`, so an open end reads
    ``"90% interval 70% to >99%"``."""
    lo, hi = percent_number(low), percent_number(high)
    if lo == hi:
        span = f"{lo}%"
    elif lo[0] in "<>" or hi[0] in "<>":
        span = f"{lo}% to {hi}%"
    else:
        span = f"{lo}-{hi}%"
    return f"{round(100 * level)}% interval {span}"


def format_class_probability(name: str, p: float, interval: dict[str, Any] | None = None) -> str:
    """``"edited 91% (90% interval 78-97%)"``; without an interval just ``"edited 91%"``."""
    text = f"{name.replace('_', ' ')} {format_probability(p)}"
    if interval and interval.get("low") is not None and interval.get("high") is not None:
        text += f" ({format_interval(interval['low'], interval['high'], interval.get('level', 0.9))})"
    return text
