"""The semantic-head trainer: group split, lineage heads, sibling test, the two-output ONNX export."""

import json

import numpy as np
import pytest

pytest.importorskip("sklearn")

from verity.train.lofo import Entry  # noqa: E402
from verity.train.semantic import (  # noqa: E402
    LINEAGES,
    PHRASES,
    fit_family_head,
    image_lineage_probs,
    lineage_of,
    markdown,
    sibling_test,
    split_groups,
)


def test_lineages_are_disjoint_and_named():
    fams = [f for v in LINEAGES.values() for f in v]
    assert len(fams) == len(set(fams))
    assert set(PHRASES) == set(LINEAGES)
    assert lineage_of("sdxl") == "latent_unet" and lineage_of("stylegan2") == "gan"
    assert lineage_of("midjourney") is None


def test_split_groups_per_stratum_never_all_and_deterministic():
    entries = []
    for fam, ng in (("a", 8), ("b", 1), ("c", 2)):
        entries += [Entry(f"/{fam}/{g}/{j}", 1, fam, fam, f"{fam}{g}") for g in range(ng) for j in range(3)]
    entries += [Entry(f"/r/{g}", 0, "real", "src1", f"r{g}") for g in range(4)]
    held = split_groups(entries, 0.25, 0)
    assert held == split_groups(entries, 0.25, 0)
    assert len({g for g in held if g.startswith("a")}) == 2
    assert not any(g.startswith("b") for g in held)  # one group: nothing to hold out
    assert len({g for g in held if g.startswith("c")}) == 1  # at least one, never all
    assert len({g for g in held if g.startswith("r")}) == 1


def _lineage_data(seed=0):
    """Generated images whose lineage sets a shared mean shift (families of one lineage are siblings)."""
    rng = np.random.default_rng(seed)
    fams = {"stylegan1": 0, "stylegan2": 0, "sd1": 1, "sd2": 1, "dit": 2, "sit": 2}
    entries, X, owner = [], [], []
    for f, k in fams.items():
        for j in range(30):
            i = len(entries)
            entries.append(Entry(f"/{f}/{j}", 1, f, f, f"{f}|{j}"))
            mu = np.zeros(6)
            mu[k] = 3.0
            for _ in range(2):
                X.append(mu + rng.normal(size=6))
                owner.append(i)
    return entries, np.asarray(X), np.asarray(owner)


def test_family_head_names_lineage_of_unseen_siblings():
    entries, X, owner = _lineage_data()
    names = list(LINEAGES)
    rows = sibling_test(X, owner, entries, names, c=1.0)
    assert {r["family"] for r in rows} == {"stylegan1", "stylegan2", "sd1", "sd2", "dit", "sit"}
    assert all(r["top1"] > 0.9 for r in rows), rows
    # lineages with no training images get a row that is never chosen
    lin = np.array([lineage_of(e.family) for e in entries])[owner]
    W, b = fit_family_head(X, lin, names, 1.0)
    P = image_lineage_probs(X, owner, len(entries), W, b)
    assert np.allclose(P.sum(1), 1)
    assert P[:, names.index("pixel_cascade")].max() < 1e-6


def test_sibling_test_fails_when_the_shift_is_family_specific():
    """A family whose trace no sibling shares is not attributed (the test can fail)."""
    entries, X, owner = _lineage_data()
    fam = np.array([e.family for e in entries])[owner]
    X = X.copy()
    X[fam == "sd2"] = np.random.default_rng(5).normal(size=(int((fam == "sd2").sum()), 6))
    X[fam == "sd2", 0] += 3.0  # looks like a GAN
    rows = {r["family"]: r for r in sibling_test(X, owner, entries, list(LINEAGES), c=1.0)}
    assert rows["sd2"]["top1"] < 0.2


def test_markdown_lists_families_and_sibling_rows():
    rep = {"families": [{"family": "sd2", "lineage": "latent_unet", "n": 3, "auc": 0.9, "tpr_at_5fpr": 0.5,
                         "lineage_top1": 1.0}],
           "summary": {"n_real": 10, "auc": 0.9, "tpr_at_5fpr": 0.5, "real_above_half": 0.1, "lineage_top1": 1.0,
                       "n_lineage": 3, "sibling_mean_top1": 0.5},
           "sibling": [{"family": "sd2", "lineage": "latent_unet", "n": 3, "top1": 0.5, "predicted": {"gan": 1}}]}
    text = markdown(rep)
    assert "| sd2 | latent_unet | 3 | 0.900 |" in text and "mean top-1 over families: 0.500" in text


def test_two_head_export_has_logit_first_and_metadata(tmp_path):
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from verity.train.semantic import build_module, export_two_heads

    class Fx(torch.nn.Module):  # a stand-in extractor: per-channel means (3 features)
        def forward(self, x):
            return x.mean(dim=(2, 3))

    rng = np.random.default_rng(0)
    head = (np.zeros(3), np.ones(3), np.array([1.0, -1.0, 0.5]), 0.25)
    W, b = rng.normal(size=(5, 3)), rng.normal(size=5)
    path = tmp_path / "m.onnx"
    meta = {"lineages": list(LINEAGES), "phrases": [PHRASES[k] for k in LINEAGES]}
    export_two_heads(torch, build_module(torch, Fx(), head, W, b), path, meta)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["logit", "family_logits"]
    x = rng.random((4, 3, 50, 70), dtype=np.float32)
    logit, fam = sess.run(None, {"image": x})
    m = x.mean(axis=(2, 3))
    np.testing.assert_allclose(logit, m @ head[2] + 0.25, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fam, m @ W.T + b, rtol=1e-4, atol=1e-5)
    assert json.loads(sess.get_modelmeta().custom_metadata_map["verity"]) == meta


def test_generator_family_from_logits():
    from verity.detectors.learned._base import generator_family

    meta = {"lineages": list(LINEAGES), "phrases": [PHRASES[k] for k in LINEAGES],
            "sibling_precision": {"gan": 0.8, "latent_unet": 0.3}}
    z = np.zeros((2, 5))
    z[:, 1] = 4.0
    fam = generator_family(z, meta)
    assert fam["lineage"] == "latent_unet" and fam["probability"] > 0.9
    assert fam["description"] == PHRASES["latent_unet"]
    assert fam["sibling_precision"] == 0.3 and not fam["named"]  # probable, but unreliable on unseen families
    z2 = np.zeros((2, 5))
    z2[:, 0] = 4.0
    assert generator_family(z2, meta)["named"]
    assert not generator_family(z2, {**meta, "sibling_precision": {}})["named"]  # unmeasured: not named
    assert abs(sum(fam["probabilities"].values()) - 1) < 1e-3
    assert generator_family(z[:, :4], meta) is None  # metadata names 5 lineages, the model gives 4
    assert generator_family(z, {}) is None


def test_lineage_precision_counts_calls():
    from verity.train.semantic import lineage_precision

    sib = [{"lineage": "gan", "predicted": {"gan": 3, "latent_unet": 1}},
           {"lineage": "latent_unet", "predicted": {"gan": 1}}]
    assert lineage_precision(sib) == {"gan": 0.75, "latent_unet": 0.0}


def test_licence_filter_reads_the_manifest(tmp_path):
    from verity.train.semantic import _licence_excluded

    (tmp_path / "manifest.csv").write_text("path,label,licence\na.png,ai_generated,MIT (repository)\n"
                                           "b.png,authentic,ImageNet: research-only\nc.png,authentic,CC BY-NC 4.0\n")
    got = _licence_excluded([str(tmp_path)], "research|-NC")
    assert got == {str(tmp_path / "b.png"), str(tmp_path / "c.png")}
    assert _licence_excluded([str(tmp_path)], None) == set()
