"""The zero-shot coder's trainer (verity.train.zed): arguments, errors, real-only bank, a tiny run."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from verity.train import zed as tz


def _args(*argv):
    p = argparse.ArgumentParser()
    tz.add_arguments(p)
    return p.parse_args(list(argv))


def test_missing_manifest_is_a_one_line_error(tmp_path, capsys):
    assert tz.main(_args("--data", str(tmp_path), "--out", str(tmp_path / "o"))) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "manifest.csv" in err[0]


def test_bank_refuses_generated_or_held_out_images(astronaut):
    good = {"label": 0, "val": False, "kind": "face", "pixels": astronaut}
    bank = tz.build_bank([good], np.random.default_rng(0))
    assert [b.shape for b in bank] == [(2, 256, 256), (2, 128, 128), (2, 64, 64)]
    for bad in ({**good, "label": 1}, {**good, "val": True}):
        with pytest.raises(ValueError):
            tz.build_bank([bad], np.random.default_rng(0))


def test_scores_have_documented_directions():
    f = {"d": -0.5, "d0": -0.4, "d1": -0.2, "d2": 0.1, "nll": 3.0, "entropy": 3.5, "lap": 10.0}
    g = {**f, "d": 0.5, "d0": 0.6}
    s = tz.SCORES["zed: -(NLL - H), mean of 3 levels"]
    assert s(f) > s(g)  # more predictable than expected -> more suspicious (the a-priori direction)


def test_tiny_end_to_end_run(shared_data, tmp_path, capsys):
    pytest.importorskip("torch", reason="torch (the [train] extra) is not installed")
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    pytest.importorskip("sklearn", reason="scikit-learn is not installed")
    rc = tz.main(_args("--data", str(shared_data), "--out", str(tmp_path), "--limit", "2", "--steps", "4",
                       "--batch", "4", "--eval", "--report", str(tmp_path / "r.json")))
    assert rc == 0
    assert (tmp_path / "learned_zed.onnx").is_file()
    out = capsys.readouterr().out
    assert "training-side real photos (the only training data)" in out and "AUC" in out
