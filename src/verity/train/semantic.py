"""``verity train semantic-head``: the semantic branch, trained on the public corpus (issue 12).

Writes a ``learned_semantic.onnx`` (to ``--out``; not the shipped file unless ``--out`` is the
package's weights folder): the frozen ImageNet MobileNetV2 + EfficientNet-Lite0 features
of :func:`verity.train.detector._semantic_features` and two linear heads on them,

* ``logit`` (N,): AI-generated or not, the L2 logistic head of :func:`verity.train.detector._fit_head`
  (the recipe ``verity train lofo`` measures) with a Platt scale folded in;
* ``family_logits`` (N, K): which generator lineage (:data:`LINEAGES`), a multinomial logistic
  regression on the same standardised features, fitted on the generated training images only.

Data
----
* ``--shared``: the shared data, restricted to the files the detector trainer uses for training
  (:func:`verity.train.data.detector_training_paths`), so ``verity eval --heldout`` stays held-out;
* ``--corpus``: corpus folders built by ``verity corpus build``. Their groups are split per stratum
  (a generator family for generated images, a source for real photos): ``--holdout`` of the groups of
  every stratum with at least two groups is held out. The held-out rows are written to
  ``--heldout-csv`` (``path,label,group,source,family``) for ``verity eval``;
* ``--aligned N``: content-matched fakes (the B-Free / aligned-dataset idea): two tiny 4x
  autoencoders (nearest and transposed-convolution up-sampling, :class:`verity.models.nets.TinyAutoencoder`)
  are trained on training-side real photos, and ``N`` training-side photos are reconstructed through
  one of them (a 512 px native region each, kept as PNG under ``--aligned-dir``). A reconstruction
  inherits its photo's group.

Every image is turned into ``--crops`` size- and format-blind files
(:func:`verity.train.equalize.equalize_training_image`, the same for both classes) and the centre
224 px of each is described once (cached in ``--cache``, shared with ``verity train lofo``).

Report (``--report``, ``--markdown``): on the held-out corpus groups, per family ROC AUC and TPR at
the threshold that calls 5 % of the held-out real photos fake, the share of held-out real photos
scored above 0.5, top-1 lineage accuracy on the held-out generated images, and the *sibling test*:
for each family whose lineage has another family in training, the family head refitted without that
family names the lineage of its images (top-1 accuracy).

Imports torch only inside :func:`main`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

#: Generator lineage -> the corpus families it holds (``family`` column of the corpus manifest,
#: ``sd1`` for the shared data's Stable Diffusion images). Families not listed (e.g. ``midjourney``,
#: whose architecture is unpublished) train the binary head only.
LINEAGES: dict[str, tuple[str, ...]] = {
    "gan": ("stylegan1", "stylegan2", "stylegan3", "stylegan_xl", "styleswin", "biggan", "progan", "gigagan",
            "gan_other"),
    "latent_unet": ("sd1", "sd2", "sdxl", "sdxl_turbo", "ldm", "kolors", "kandinsky2", "kandinsky3",
                    "stable_cascade"),
    "latent_transformer": ("dit", "sit", "pixart_alpha", "hunyuan_dit", "hunyuan_image", "flux", "hidream",
                           "cogview", "sd3"),
    "pixel_cascade": ("deepfloyd_if", "karlo"),
    "autoregressive": ("janus", "lumina_mgpt", "hart", "show_o", "dalle_mini", "vqgan"),
}

#: How a lineage is named in evidence sentences ("looks like ...").
PHRASES: dict[str, str] = {
    "gan": "a generative adversarial network (StyleGAN, BigGAN, ProGAN, GigaGAN family)",
    "latent_unet": "a latent-diffusion U-Net (Stable Diffusion 1.x/2/XL, Kandinsky, Kolors family)",
    "latent_transformer": "a latent-diffusion transformer (DiT, PixArt, Hunyuan-DiT, Flux family)",
    "pixel_cascade": "a pixel-space cascaded diffusion model (DeepFloyd IF, Karlo/unCLIP family)",
    "autoregressive": "an autoregressive token model (Janus, Lumina-mGPT, HART, DALL-E mini family)",
}

#: The short side (px) an analysis resamples an image to before scoring it with this head (written
#: into the file's metadata): the head is trained on copies resampled to a 384-1024 px short side.
#: Measured against native pixels in docs/benchmarks/learned.md (round 5).
SCORE_SHORT_SIDE = 512

_FAMILY_TO_LINEAGE = {f: lin for lin, fams in LINEAGES.items() for f in fams}
_AE_KINDS = ("nearest", "deconv")


def lineage_of(family: str) -> str | None:
    """The lineage of a corpus family, or None when it has none (see :data:`LINEAGES`)."""
    return _FAMILY_TO_LINEAGE.get(family)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shared", help="the shared data folder (its detector-training files only)")
    p.add_argument("--corpus", action="append", default=[], help="a corpus folder (repeatable)")
    p.add_argument("--out", default="out/semantic",
                   help="folder for learned_semantic.onnx (default out/semantic; the package's weights folder "
                        "replaces the shipped file and rewrites its pin)")
    p.add_argument("--holdout", type=float, default=0.25, help="share of each stratum's corpus groups held out")
    p.add_argument("--heldout-csv", default="out/semantic_heldout.csv",
                   help="where to list the held-out corpus images (for verity eval)")
    p.add_argument("--aligned", type=int, default=600, help="autoencoder reconstructions of training photos (0: none)")
    p.add_argument("--ae-steps", type=int, default=250, help="training steps of each tiny autoencoder")
    p.add_argument("--aligned-dir", default=".cache/semantic/aligned", help="where reconstructions are kept")
    p.add_argument("--exclude-licence", metavar="REGEX",
                   help="leave corpus rows whose licence matches REGEX (case-insensitive) out of training, "
                        "e.g. 'research|non-commercial|-NC' for a permissive-only file (held-out rows stay)")
    p.add_argument("--crops", type=int, default=3, help="equalised crops per image (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--merge", default="sdxl_turbo=sdxl", help="comma-separated a=b: count family a as b")
    p.add_argument("--cache", default=".cache/lofo", help="feature cache folder (shared with verity train lofo)")
    p.add_argument("--family-c", type=float, default=0.05, help="L2 strength (C) of the family head")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-pin", action="store_true", help="do not rewrite the sha256 pin in verity/models")
    p.add_argument("--report", help="write the held-out figures as JSON here")
    p.add_argument("--markdown", help="write the held-out figures as Markdown here")


# --------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------


def split_groups(entries, frac: float, seed: int) -> set[str]:
    """Groups held out: ``frac`` of the groups of each stratum (family for generated images, source
    for real photos) with at least two groups, at least one and never all of them."""
    by: dict[str, set[str]] = defaultdict(set)
    for e in entries:
        by[e.family if e.y else "real:" + e.source].add(e.group)
    held: set[str] = set()
    for stratum in sorted(by):
        groups = sorted(by[stratum])
        if len(groups) < 2:
            continue
        n = min(len(groups) - 1, max(1, int(round(frac * len(groups)))))
        rng = np.random.default_rng([seed, int(hashlib.sha256(stratum.encode()).hexdigest()[:8], 16)])
        held.update(groups[i] for i in rng.permutation(len(groups))[:n])
    return held


def _aligned_entries(torch, photos, args) -> list:
    """Reconstructions of ``args.aligned`` training photos through two tiny autoencoders (cached PNGs)."""
    from PIL import Image
    from tqdm import tqdm

    from verity.train.data import load_pixels
    from verity.train.detector import _reconstruct, _train_autoencoder
    from verity.train.lofo import Entry

    rng = np.random.default_rng(args.seed + 7)
    chosen = [photos[i] for i in sorted(rng.permutation(len(photos))[: args.aligned])]
    root = Path(args.aligned_dir) / f"seed{args.seed}_steps{args.ae_steps}"
    out, aes = [], {}
    for i, e in enumerate(tqdm(chosen, desc="aligned fakes", file=sys.stderr)):
        up = _AE_KINDS[i % len(_AE_KINDS)]
        f = root / up / (hashlib.sha256(e.path.encode()).hexdigest()[:20] + ".png")
        if not f.is_file():
            if up not in aes:
                j = _AE_KINDS.index(up)
                train_px = []
                for q in chosen[:300]:
                    try:
                        px = load_pixels(q.path)
                    except Exception:  # noqa: BLE001 - unreadable photos are skipped
                        continue
                    if min(px.shape[:2]) >= 64:
                        train_px.append(px)
                aes[up], loss, _ = _train_autoencoder(torch, train_px, up, args.ae_steps, args.seed + 100 + j)
                print(f"autoencoder {up}: {args.ae_steps} steps, final L1 {loss:.4f}", file=sys.stderr)
            try:
                px = load_pixels(e.path)
            except Exception:  # noqa: BLE001
                continue
            if min(px.shape[:2]) < 64:
                continue
            rec = _reconstruct(torch, aes[up], px, np.random.default_rng([args.seed, i]))
            f.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rec).save(f)
        out.append(Entry(str(f), 1, f"ae_{up}", f"aligned/ae_{up}", e.group))
    return out


def gather(args):
    """Training and held-out entries (see the module docstring)."""
    from verity.train.data import detector_training_paths, read_dataset
    from verity.train.lofo import collect

    merge = dict(kv.split("=", 1) for kv in args.merge.split(",") if "=" in kv)
    train, held = [], []
    if args.shared:
        recs = read_dataset(args.shared)
        keep = detector_training_paths(args.shared, recs).get("learned")
        if keep is None:
            raise SystemExit("--shared: the detector trainer's split could not be computed")
        train += [e for e in collect([args.shared], merge) if e.path in keep]
    corpus = collect(args.corpus, merge) if args.corpus else []
    held_groups = split_groups(corpus, args.holdout, args.seed)
    excluded = _licence_excluded(args.corpus, getattr(args, "exclude_licence", None))
    for e in corpus:
        if e.group in held_groups:
            held.append(e)
        elif e.path not in excluded:
            train.append(e)
    if excluded:
        print(f"--exclude-licence: {len(excluded)} corpus files left out of training", file=sys.stderr)
    return train, held


def _licence_excluded(corpus_dirs, pattern: str | None) -> set[str]:
    """Paths of the corpus rows whose ``licence`` column matches ``pattern``."""
    import csv
    import re

    if not pattern:
        return set()
    rx = re.compile(pattern, re.IGNORECASE)
    out = set()
    for d in corpus_dirs:
        man = Path(d) / "manifest.csv"
        if not man.is_file():
            continue
        with man.open(newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                if rx.search(r.get("licence") or ""):
                    out.add(str(Path(d) / r["path"]))
    return out


# --------------------------------------------------------------------------------------------------
# heads
# --------------------------------------------------------------------------------------------------


def fit_family_head(Z: np.ndarray, lineage: np.ndarray, names: list[str], c: float):
    """Multinomial L2 logistic regression (balanced classes) on standardised features ``Z``.

    Returns ``(W, b)`` with ``W`` (K, D) and ``b`` (K,) in the order of ``names``; a lineage absent
    from ``lineage`` gets a row of zeros and a bias of -30 (never predicted).
    """
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
    clf.fit(Z, lineage)
    W = np.zeros((len(names), Z.shape[1]))
    b = np.full(len(names), -30.0)
    for k, cls in enumerate(clf.classes_):
        j = names.index(cls)
        if len(clf.classes_) == 2:  # binary LogisticRegression keeps one row
            W[j] = clf.coef_[0] * (1 if k == 1 else -1) / 2
            b[j] = clf.intercept_[0] * (1 if k == 1 else -1) / 2
        else:
            W[j], b[j] = clf.coef_[k], clf.intercept_[k]
    return W, b


def image_lineage_probs(Z, owner, n, W, b) -> np.ndarray:
    """Per image, the mean over its crops of the softmax of the family head (n, K); NaN for none."""
    from verity.ops.npr import softmax
    from verity.train.lofo import _per_image_mean

    p = softmax(Z @ W.T + b)
    return np.stack([_per_image_mean(p[:, k], owner, n) for k in range(W.shape[0])], axis=1)


def sibling_test(Z, owner, entries, names, c: float) -> list[dict]:
    """For each family whose lineage has another family, top-1 lineage accuracy of a family head
    fitted without it, on all of its images."""
    fam = np.array([e.family for e in entries])
    lin = np.array([lineage_of(f) or "" for f in fam])
    row_fam, row_lin = fam[owner], lin[owner]
    rows = []
    for f in sorted({f for f in fam if lineage_of(f)}):
        L = lineage_of(f)
        others = {g for g in set(fam[lin == L]) if g != f}
        if not others:
            continue
        tr = (row_lin != "") & (row_fam != f)
        W, b = fit_family_head(Z[tr], row_lin[tr], names, c)
        P = image_lineage_probs(Z, owner, len(entries), W, b)
        mine = np.flatnonzero(fam == f)
        mine = mine[np.isfinite(P[mine, 0])]
        pred = np.array(names)[np.argmax(P[mine], axis=1)]
        rows.append({"family": f, "lineage": L, "n": int(len(mine)), "top1": float((pred == L).mean()),
                     "predicted": dict(Counter(pred.tolist()))})
    return rows


# --------------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------------


def build_module(torch, fx, head, W, b):
    """One module: image (N, 3, H, W) -> (logit (N,), family_logits (N, K))."""
    mu, sd, coef, c = head

    class TwoHeads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features = fx
            self.register_buffer("mu", torch.tensor(mu, dtype=torch.float32))
            self.register_buffer("sigma", torch.tensor(sd, dtype=torch.float32))
            self.head = torch.nn.Linear(len(mu), 1)
            self.family = torch.nn.Linear(len(mu), W.shape[0])
            with torch.no_grad():
                self.head.weight.copy_(torch.tensor(coef, dtype=torch.float32)[None])
                self.head.bias.fill_(float(c))
                self.family.weight.copy_(torch.tensor(W, dtype=torch.float32))
                self.family.bias.copy_(torch.tensor(b, dtype=torch.float32))

        def forward(self, x):
            z = (self.features(x) - self.mu) / self.sigma
            return self.head(z)[:, 0], self.family(z)

    return TwoHeads().eval()


def export_two_heads(torch, net, path: Path, meta: dict) -> None:
    """ONNX opset 17, input ``image`` (dynamic N, H, W), outputs ``logit`` then ``family_logits``,
    and ``meta`` as JSON in the model's ``verity`` metadata entry."""
    import warnings

    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=17, input_names=["image"],
                          output_names=["logit", "family_logits"],
                          dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "logit": {0: "n"},
                                        "family_logits": {0: "n"}})
    write_metadata(path, meta)


def write_metadata(path: Path, meta: dict) -> None:
    """Store ``meta`` as JSON in the ``verity`` metadata entry of the ONNX file (replacing any)."""
    import onnx

    m = onnx.load(str(path))
    del m.metadata_props[:]
    entry = m.metadata_props.add()
    entry.key, entry.value = "verity", json.dumps(meta, sort_keys=True)
    onnx.save(m, str(path))


def lineage_precision(sibling: list[dict]) -> dict[str, float]:
    """Per predicted lineage, the share of the sibling test's calls of it that were right (how far a
    call of that lineage can be trusted on a family the head never saw)."""
    tot: Counter = Counter()
    ok: Counter = Counter()
    for r in sibling:
        for lin, n in r["predicted"].items():
            tot[lin] += n
            ok[lin] += n if lin == r["lineage"] else 0
    return {lin: ok[lin] / tot[lin] for lin in sorted(tot)}


# --------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------


def _fmt(v) -> str:
    return "n/a" if v is None or v != v else f"{v:.3f}"


def markdown(rep: dict) -> str:
    lines = ["| held-out family | lineage | fakes | ROC AUC vs held-out reals | TPR at 5 % FPR | lineage top-1 |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rep["families"]:
        lines.append(f"| {r['family']} | {r['lineage'] or '-'} | {r['n']} | {_fmt(r['auc'])} | "
                     f"{_fmt(r['tpr_at_5fpr'])} | {_fmt(r.get('lineage_top1'))} |")
    s = rep["summary"]
    lines += ["", f"All held-out generated images against {s['n_real']} held-out real photos: ROC AUC "
              f"{_fmt(s['auc'])}, TPR {_fmt(s['tpr_at_5fpr'])} at 5 % FPR; real photos above 0.5: "
              f"{_fmt(s['real_above_half'])}; lineage top-1 on held-out generated images {_fmt(s['lineage_top1'])} "
              f"({s['n_lineage']} images).", "",
              "| sibling test: family left out of the family head | lineage | images | top-1 lineage | predicted |",
              "|---|---|---:|---:|---|"]
    for r in rep["sibling"]:
        pred = ", ".join(f"{k} {v}" for k, v in sorted(r["predicted"].items(), key=lambda kv: -kv[1]))
        lines.append(f"| {r['family']} | {r['lineage']} | {r['n']} | {_fmt(r['top1'])} | {pred} |")
    if rep["sibling"]:
        prec = ", ".join(f"{k} {_fmt(v)}" for k, v in (s.get("sibling_precision") or {}).items())
        lines += ["", f"Sibling test, mean top-1 over families: {_fmt(s['sibling_mean_top1'])} "
                  f"(chance {1 / len(LINEAGES):.2f}); share of right calls per called lineage: {prec}."]
    return "\n".join(lines) + "\n"


def evaluate(entries, held_idx, s_img, P, names) -> tuple[list[dict], dict]:
    """Held-out rows per family and a summary (``s_img``: calibrated logit per image)."""
    from verity.train.lofo import _auc_tpr

    y = np.array([e.y for e in entries])
    fam = np.array([e.family for e in entries])
    held = np.zeros(len(entries), bool)
    held[held_idx] = True
    real = s_img[held & (y == 0)]
    rows = []
    lin_ok, lin_n = 0, 0
    for f in sorted(set(fam[held & (y == 1)])):
        m = held & (y == 1) & (fam == f) & np.isfinite(s_img)
        auc, tpr = _auc_tpr(real, s_img[m])
        L = lineage_of(f)
        top1 = None
        if L:
            pred = np.array(names)[np.argmax(P[m], axis=1)]
            top1 = float((pred == L).mean()) if len(pred) else None
            lin_ok += int((pred == L).sum())
            lin_n += len(pred)
        rows.append({"family": f, "lineage": L, "n": int(m.sum()), "auc": auc, "tpr_at_5fpr": tpr,
                     "lineage_top1": top1})
    fake = s_img[held & (y == 1)]
    auc, tpr = _auc_tpr(real, fake)
    real_f = real[np.isfinite(real)]
    summary = {"n_real": int(len(real_f)), "n_fake": int(np.isfinite(fake).sum()), "auc": auc, "tpr_at_5fpr": tpr,
               "real_above_half": float((real_f > 0).mean()) if len(real_f) else None,
               "lineage_top1": lin_ok / lin_n if lin_n else None, "n_lineage": lin_n}
    return rows, summary


# --------------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> int:
    import torch

    from verity.train.detector import _fit_head, _fold_platt_semantic, _pin, _rewrite_pins, _semantic_features, fit_platt
    from verity.models import WEIGHTS_DIR
    from verity.train.lofo import _fold_of, _image_scores, _per_image_mean, compute_features

    if not args.shared and not args.corpus:
        print("error: give --shared and/or --corpus", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, args.threads))
    train, held = gather(args)
    if args.aligned > 0:
        photos = [e for e in train if e.y == 0]
        train += _aligned_entries(torch, photos, args)
    entries = train + held
    held_idx = np.arange(len(train), len(entries))
    c_tr, c_he = Counter(e.family for e in train), Counter(e.family for e in held)
    print("training images per family: " + ", ".join(f"{k} {v}" for k, v in sorted(c_tr.items())), file=sys.stderr)
    print("held-out images per family: " + ", ".join(f"{k} {v}" for k, v in sorted(c_he.items())), file=sys.stderr)
    fargs = argparse.Namespace(crops=args.crops, seed=args.seed, backbone="both", cache=args.cache, shipped=False,
                               threads=args.threads)
    X, owner, _ = compute_features(entries, fargs)
    n = len(entries)
    y = np.array([e.y for e in entries])
    is_tr = np.zeros(n, bool)
    is_tr[: len(train)] = True
    row_tr, row_y = is_tr[owner], y[owner]

    # binary head + Platt from group-fold out-of-fold image scores of the training side
    print("fitting the binary head ...", file=sys.stderr)
    head = _fit_head(X[row_tr], row_y[row_tr])
    fold = _fold_of([e.group for e in train], 5, args.seed)
    img_fold = np.array([fold[e.group] for e in train] + [-1] * len(held))
    row_fold = img_fold[owner]
    oof = np.full(n, np.nan)
    for k in range(5):
        print(f"calibration fold {k + 1}/5 ...", file=sys.stderr)
        fit = row_tr & (row_fold != k)
        s = _image_scores(X, owner, _fit_head(X[fit], row_y[fit]), n)
        m = img_fold == k
        oof[m] = s[m]
    ok = np.isfinite(oof)
    a, b = fit_platt(oof[ok], y[ok])
    print(f"Platt scale {a:.3f}, shift {b:.3f} (from {ok.sum()} out-of-fold training images)", file=sys.stderr)
    head = _fold_platt_semantic(head, a, b)
    mu, sd, coef, c0 = head
    Z = (X - mu) / sd
    s_img = _per_image_mean(Z @ coef + c0, owner, n)

    # family head on generated training images of known lineage
    names = list(LINEAGES)
    fam = np.array([e.family for e in entries])
    lin = np.array([lineage_of(f) or "" for f in fam])
    row_lin = lin[owner]
    m = row_tr & (row_y == 1) & (row_lin != "")
    print(f"fitting the family head on {m.sum()} crops ...", file=sys.stderr)
    W, bf = fit_family_head(Z[m], row_lin[m], names, args.family_c)
    P = image_lineage_probs(Z, owner, n, W, bf)

    rows, summary = evaluate(entries, held_idx, s_img, P, names)
    print("sibling test ...", file=sys.stderr)
    # every image (training and held-out) of the family left out is scored by a head that never saw it
    sib = sibling_test(Z, owner, entries, names, args.family_c)
    summary["sibling_mean_top1"] = float(np.mean([r["top1"] for r in sib])) if sib else None
    summary["sibling_precision"] = lineage_precision(sib)
    command = ("verity train semantic-head" + (f" --shared {args.shared}" if args.shared else "")
               + "".join(f" --corpus {c}" for c in args.corpus)
               + f" --holdout {args.holdout} --aligned {args.aligned} --ae-steps {args.ae_steps}"
               + f" --crops {args.crops} --seed {args.seed} --merge {args.merge} --family-c {args.family_c}"
               + (f" --exclude-licence '{args.exclude_licence}'" if args.exclude_licence else ""))
    report = {"command": command, "families": rows, "summary": summary, "sibling": sib,
              "platt": [a, b], "train_counts": dict(c_tr), "heldout_counts": dict(c_he)}
    text = markdown(report)
    print(text)
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report, indent=1))
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(text)
    hp = Path(args.heldout_csv)
    hp.parent.mkdir(parents=True, exist_ok=True)
    with hp.open("w", newline="") as fh:
        import csv

        w = csv.writer(fh)
        w.writerow(["path", "label", "group", "source", "family"])
        for e in held:
            w.writerow([str(Path(e.path).resolve()), "ai_generated" if e.y else "authentic", e.group, e.source,
                        e.family if e.y else ""])
    print(f"held-out corpus images listed in {hp} ({len(held)})", file=sys.stderr)

    out = Path(args.out)
    net = build_module(torch, _semantic_features(torch, "both"), head, W, bf)
    meta = {"lineages": names, "phrases": [PHRASES[k] for k in names], "command": command,
            "families": {k: list(v) for k, v in LINEAGES.items()},
            "trained_on": sorted(c_tr), "platt": [a, b],
            "resize_short": SCORE_SHORT_SIDE,
            "n_families": len([f for f in c_tr if f != "real" and not f.startswith("ae_")]),
            "sibling_top1": summary["sibling_mean_top1"], "sibling_precision": summary["sibling_precision"]}
    path = out / "learned_semantic.onnx"
    export_two_heads(torch, net, path, meta)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
    if not args.no_pin and out.resolve() == WEIGHTS_DIR.resolve():
        if not _rewrite_pins(_pin(out, ["learned_semantic"])):
            print("warning: could not rewrite the sha256 pin in verity/models/__init__.py", file=sys.stderr)
    return 0
