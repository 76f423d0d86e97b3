"""Bounded fuzzing in CI (the mutation driver of tests/hardening/fuzz.py) and the regressions it and
atheris found. ``VERITY_FUZZ_SECONDS`` scales the per-target time budget (default 10 s; about 30 s
for the three targets together)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.hardening import fuzz

FINDINGS = Path(__file__).parent / "fuzz_findings"
BUDGET = float(os.environ.get("VERITY_FUZZ_SECONDS", "10"))


@pytest.fixture(scope="module")
def seed_corpus():
    return fuzz.seeds(c2pa_signed=True)


def test_seeds_cover_every_container(seed_corpus):
    from verity.core.io import decode, sniff_format

    fmts = {sniff_format(s[:16]) for s in seed_corpus}
    assert {"JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF"} <= fmts
    for s in seed_corpus:
        decode(s)  # every seed is a valid file, so mutants start deep in the parsers


@pytest.mark.parametrize("target", sorted(fuzz.TARGETS))
def test_seeds_pass_every_target(target, seed_corpus):
    for s in seed_corpus:
        assert fuzz.run_one(fuzz.TARGETS[target], s) is None


@pytest.mark.slow
@pytest.mark.parametrize("target,iterations", [("load", 6000), ("metadata", 600), ("c2pa", 2000)])
def test_bounded_fuzz_run_finds_nothing(target, iterations, seed_corpus, tmp_path):
    if target == "c2pa":
        pytest.importorskip("c2pa")
    pool = seed_corpus if target == "c2pa" else [s for s in seed_corpus if b"c2pa" not in s]
    r = fuzz.fuzz(target, seconds=BUDGET, iterations=iterations, seed=2026, findings_dir=tmp_path,
                  seed_corpus=pool)
    assert r["runs"] >= len(pool)
    details = [(tmp_path / f"{target}-{k}.txt").read_text()[-1500:] for k, _ in r["findings"]]
    assert not r["findings"], "\n\n".join(details)


def test_mutator_is_deterministic(seed_corpus):
    import random

    a = [fuzz.mutate(seed_corpus[0], random.Random(5), seed_corpus) for _ in range(3)]
    b = [fuzz.mutate(seed_corpus[0], random.Random(5), seed_corpus) for _ in range(3)]
    assert a == b


# ---- regressions: every finding so far -----------------------------------------------------------


@pytest.mark.parametrize("path", sorted(FINDINGS.glob("*.bin")), ids=lambda p: p.stem)
@pytest.mark.parametrize("target", sorted(fuzz.TARGETS))
def test_finding_regressions(path, target):
    if target == "c2pa":
        pytest.importorskip("c2pa")
    assert fuzz.run_one(fuzz.TARGETS[target], path.read_bytes()) is None


def test_regression_tiff_bits_per_sample_garbage():
    """atheris: a TIFF listing 11 BitsPerSample values (garbage after the first three) was reported
    as bit depth 28526."""
    from verity.core.io import decode

    s = decode((FINDINGS / "load-tiff-bitspersample-garbage.bin").read_bytes())
    assert s.bit_depth == 8


def test_regression_libtiff_messages_do_not_reach_stderr(capfd):
    """mutation driver: a corrupt LZW TIFF made libtiff print 'Using code not yet in table' on fd 2,
    which broke the CLI's one-line errors. The message is now part of the error (or dropped)."""
    import io

    import numpy as np
    from PIL import Image

    from verity.core.errors import InputError
    from verity.core.io import decode

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
        buf, format="TIFF", compression="tiff_lzw")
    data = bytearray(buf.getvalue())
    for i in range(8, 200):
        data[i] ^= 0x5A  # the strip data follows the header in Pillow's layout
    try:
        decode(bytes(data))
    except InputError as e:
        assert "\n" not in str(e)
    assert capfd.readouterr().err == ""
