"""Core types, safe image loading, the detector registry and fusion.

Nothing here imports another part of verity, and nothing imports torch.
"""

from verity.core.errors import InputError, VerityError
from verity.core.types import CLASSES, VERDICTS, Face, Finding, Sample, Verdict

__all__ = ["CLASSES", "VERDICTS", "Face", "Finding", "InputError", "Sample", "Verdict", "VerityError"]
