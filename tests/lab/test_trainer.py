from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.lab.conftest import TINY
from verity.lab.marks import read_marks
from verity.lab.sample import sample_images
from verity.lab.trainer import RunError, load_run, train

FAMILIES = ("autoencoder", "gan", "diffusion")


def _train(fam, data, out, steps, resume=False, **kw):
    cfg = {} if resume else dict(TINY[fam])
    cfg.update(kw)
    return train(fam, data, out, steps=steps, every=2, fd_n=0, threads=1, max_side=128, progress=False,
                 resume=resume, seed=3, **cfg)


@pytest.mark.parametrize("fam", FAMILIES)
def test_train_few_steps_then_sample(fam, image_dir, tmp_path):
    run = tmp_path / fam
    info = _train(fam, image_dir, run, steps=3)
    assert info["steps_done"] == 3
    assert len(info["history"]) == 3
    assert all(np.isfinite(v) for h in info["history"] for v in h.values())
    rj = json.loads((run / "run.json").read_text())
    assert rj["family"] == fam and rj["config"]["size"] == 32
    assert rj["data"]["files"] == 6 and rj["data"]["heldout_files"] == 1
    assert len(rj["data"]["fingerprint"]) == 64
    assert "fd_note" in rj["metrics"] and "not the Inception FID".lower() in rj["metrics"]["fd_note"].lower()
    grids = sorted((run / "samples").glob("step_*.png"))
    assert [g.name for g in grids] == ["step_000002.png", "step_000003.png"]
    assert read_marks(grids[-1])["software"] == f"verity-lab {fam} {rj['run_id']}"
    fam_obj, _ = load_run(run)
    imgs = sample_images(fam_obj, 5, seed=1, batch=2)
    assert imgs.shape == (5, 32, 32, 3) and imgs.dtype == np.uint8
    assert imgs.std() > 0  # not a constant image


@pytest.mark.parametrize("fam", FAMILIES)
def test_same_seed_same_samples(fam, image_dir, tmp_path):
    # an untrained x0-predicting diffusion model (the default) maps any noise to a nearly flat image,
    # like an untrained decoder; with eps-prediction the sampler's noise reaches the output
    kw = {"pred": "eps"} if fam == "diffusion" else {}
    _train(fam, image_dir, tmp_path / "r", steps=2, **kw)
    f, _ = load_run(tmp_path / "r")
    a = sample_images(f, 3, seed=7)
    b = sample_images(f, 3, seed=7)
    c = sample_images(f, 3, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    if fam != "autoencoder":  # an untrained decoder maps latent noise to nearly flat images
        assert np.abs(a.astype(int) - c.astype(int)).mean() > 0.5


@pytest.mark.parametrize("fam", FAMILIES)
def test_resume_continues_exactly(fam, image_dir, tmp_path):
    full = _train(fam, image_dir, tmp_path / "full", steps=4)
    _train(fam, image_dir, tmp_path / "split", steps=2)
    resumed = _train(fam, image_dir, tmp_path / "split", steps=4, resume=True)
    assert [h["step"] for h in resumed["history"]] == [1, 2, 3, 4]
    for a, b in zip(full["history"], resumed["history"]):
        assert a == b  # bit-for-bit the same losses
    fa, _ = load_run(tmp_path / "full")
    fb, _ = load_run(tmp_path / "split")
    for k in fa.nets:
        for (n, pa), pb in zip(fa.nets[k].state_dict().items(), fb.nets[k].state_dict().values()):
            assert torch.equal(pa, pb), n


def test_resume_differs_without_state(image_dir, tmp_path):
    """Control for the resume test: a fresh 2-step run with another seed gives other losses."""
    a = _train("autoencoder", image_dir, tmp_path / "a", steps=2)
    b = train("autoencoder", image_dir, tmp_path / "b", steps=2, every=2, fd_n=0, threads=1, max_side=128,
              progress=False, seed=4, **TINY["autoencoder"])
    assert a["history"][1] != b["history"][1]


def test_refuses_to_overwrite_and_to_resume_nothing(image_dir, tmp_path):
    _train("autoencoder", image_dir, tmp_path / "r", steps=1)
    with pytest.raises(RunError, match="--resume"):
        _train("autoencoder", image_dir, tmp_path / "r", steps=1)
    with pytest.raises(RunError, match="nothing to resume"):
        _train("autoencoder", image_dir, tmp_path / "empty", steps=1, resume=True)
    with pytest.raises(RunError, match="autoencoder run"):
        train("gan", image_dir, tmp_path / "r", steps=2, resume=True, progress=False)


def test_vae_has_kl(image_dir, tmp_path):
    info = _train("autoencoder", image_dir, tmp_path / "v", steps=2, vae=True)
    assert "kl" in info["history"][0] and info["history"][0]["kl"] >= 0


def test_unknown_option_and_bad_data(image_dir, tmp_path):
    from verity.lab.data import DataError

    with pytest.raises(KeyError, match="unknown option"):
        train("gan", image_dir, tmp_path / "x", steps=1, progress=False, wings=3)
    with pytest.raises(DataError):
        train("gan", tmp_path / "missing", tmp_path / "y", steps=1, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        train("gan", tmp_path / "empty", tmp_path / "z", steps=1, progress=False)


def test_gan_ns_loss_and_diffusion_cosine(image_dir, tmp_path):
    g = _train("gan", image_dir, tmp_path / "g", steps=2, loss="ns")
    assert g["history"][-1]["loss_d"] > 0
    d = _train("diffusion", image_dir, tmp_path / "d", steps=2, schedule="cosine", patch=2, attn=[8])
    assert np.isfinite(d["history"][-1]["mse"])


@pytest.mark.parametrize("fam", FAMILIES)
def test_default_models_at_128(fam):
    """The default architectures build at 128 px and produce 128 px images (untrained, no training)."""
    from verity.lab.models import create_family

    torch.manual_seed(0)
    f = create_family(fam, size=128)
    kw = {"steps": 2} if fam == "diffusion" else {}
    x = f.sample(2, torch.Generator().manual_seed(0), **kw)
    assert tuple(x.shape) == (2, 3, 128, 128)
    assert float(x.min()) >= -1 and float(x.max()) <= 1
