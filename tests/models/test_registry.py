"""The weight registry: import-light, pinned, and honest about missing or altered files."""

from __future__ import annotations

import subprocess
import sys

import pytest

import verity.models as vm


def test_import_is_light():
    code = ("import sys, verity.models, verity.detectors.learned.semantic, verity.detectors.learned.npr; "
            "bad=[m for m in ('torch','onnxruntime','sklearn') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_list_and_get():
    assert vm.list_models() == ["learned_npr", "learned_semantic"]
    c = vm.get_config("learned_semantic")
    assert c.file.endswith(".onnx") and c.crop >= 128 and 1 <= c.top_k <= c.max_crops
    with pytest.raises(KeyError, match="known"):
        vm.get_config("nope")


@pytest.mark.parametrize("name", ["learned_semantic", "learned_npr"])
def test_shipped_weights_match_pins(name):
    p = vm.weight_path(name)
    if not p.is_file():
        pytest.skip(f"{p.name} not trained yet")
    cfg = vm.get_config(name)
    assert len(cfg.sha256) == 64, "shipped weights must be pinned"
    assert vm.file_sha256(p) == cfg.sha256
    vm.verify_weights.cache_clear()
    assert vm.verify_weights(name) is None


def test_total_size_of_shipped_onnx_is_small():
    total = sum(p.stat().st_size for p in vm.WEIGHTS_DIR.glob("*.onnx"))
    assert total < 40e6


def test_missing_and_corrupt_weights(tmp_path, monkeypatch):
    import dataclasses

    monkeypatch.setattr(vm, "WEIGHTS_DIR", tmp_path)
    vm.verify_weights.cache_clear()
    try:
        reason = vm.verify_weights("learned_npr")
        assert reason and "not installed" in reason and "verity train detector" in reason
        (tmp_path / vm.get_config("learned_npr").file).write_bytes(b"not onnx")
        monkeypatch.setitem(vm._CONFIGS, "learned_npr", dataclasses.replace(vm._CONFIGS["learned_npr"], sha256="0" * 64))
        vm.verify_weights.cache_clear()
        assert "SHA-256" in vm.verify_weights("learned_npr")
    finally:
        vm.verify_weights.cache_clear()
