"""``verity eval DATASET [--equalize jpeg90] [--perturb jpeg75,resize0.5,crop0.8] [--out DIR] ...``

Measures verity on a labelled dataset and writes ``report.md``, ``metrics.json``,
``predictions.csv``, ``roc.png`` and ``reliability.png``. See ``docs/eval.md``.
"""

from __future__ import annotations

import argparse
import shlex
import sys

HAND_SET = "hand-set"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="measure accuracy, AUC, calibration and robustness on a labelled dataset",
        description="Evaluate verity on a labelled dataset: a folder with sub-folders authentic/, "
        "ai_generated/, edited/, face_manipulated/; a CSV with columns path,label[,group,source]; or the "
        "shared data folder (manifest.csv). Every image is analysed as it is (raw) and, unless "
        "--equalize none, decoded, stripped of all metadata and re-encoded identically (equalized).",
        epilog="Exit codes: 0 done, 2 usage error (bad dataset or flag), 3 done but some files were "
        "unreadable (listed in the report), 4 missing optional dependency.",
    )
    p.add_argument("dataset", metavar="DATASET", help="class folders, a CSV manifest, or the shared data folder")
    p.add_argument("--equalize", default="jpeg90", metavar="SPEC",
                   help="re-encode every image before a second analysis: jpegQ (default jpeg90), png, or none")
    p.add_argument("--perturb", default="", metavar="LIST",
                   help="also analyse perturbed copies, e.g. jpeg75,resize0.5,crop0.8 (also fitN: long side at most "
                        "N px, blurS, noiseS)")
    p.add_argument("--out", default="eval_out", metavar="DIR", help="output folder (default ./eval_out)")
    p.add_argument("--detectors", metavar="A,B", help="run only these detectors (see `verity detectors`)")
    p.add_argument("--limit", type=int, metavar="N",
                   help="evaluate at most N images, balanced over labels, then sources, then groups")
    p.add_argument("--seed", type=int, default=0, help="seed for --limit and --synth-edited (default 0)")
    p.add_argument("--synth-edited", type=int, default=0, metavar="N",
                   help="add N synthetic edited images (splice / copy-move / inpaint) made from the "
                   "dataset's authentic images; written under DIR/synthetic_edited")
    p.add_argument("--fusion", metavar="FUSION.json",
                   help="fusion weights to use (default: the shipped ones; 'hand-set' for the detectors' own weights)")
    p.add_argument("--heldout", action="store_true",
                   help="keep only the validation groups of a fitted fusion's training split, less the files "
                   "the learned detectors were trained on (needs the same dataset)")
    p.add_argument("--split-from", metavar="FUSION.json",
                   help="fitted fusion file whose split --heldout uses (default: --fusion, else the shipped file)")
    p.add_argument("--compare", metavar="FUSION.json",
                   help="also report another fusion ('hand-set' or a file) on the same detector scores, in "
                   "DIR/compare/ (no detector is run twice)")
    p.add_argument("--scores-from", metavar="PREDICTIONS.csv",
                   help="run no detector: take the images, labels and detector scores of an earlier run's "
                   "predictions.csv and fuse them with --fusion (DATASET is only recorded)")
    p.add_argument("--note", default="", help="a sentence to put at the top of the report")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _heldout(records, fusion_path, dataset):
    import json
    from pathlib import Path

    from verity.core.fusion import FUSION_FILE
    from verity.train.data import DatasetError, detector_training_paths, fingerprint, group_split

    path = Path(fusion_path) if fusion_path and fusion_path != HAND_SET else FUSION_FILE
    if not path.is_file():
        raise DatasetError(f"--heldout: no fitted fusion file at {path} (give one with --split-from)")
    prov = json.loads(path.read_text()).get("provenance", {})
    split = prov.get("split")
    if not split:
        raise DatasetError(f"--heldout: {path.name} records no training split")
    if split.get("dataset_fingerprint") and split["dataset_fingerprint"] != fingerprint(records):
        raise DatasetError("--heldout: this dataset is not the one the fusion was trained on (fingerprint differs)")
    _, val = group_split(records, float(split["val_fraction"]), int(split["seed"]))
    trained = detector_training_paths(dataset, records)
    n0 = len(val)
    val = [r for r in val if not any(r.path in v for v in trained.values())]
    what = (f"held-out validation groups of {path.name} (val_fraction {split['val_fraction']}, seed "
            f"{split['seed']}), less {n0 - len(val)} files the learned detectors were trained on")
    calib = set(split.get("calibration_groups", []))
    if calib:  # the fusion's calibration stage and thresholds were fitted on these groups
        n1 = len(val)
        val = [r for r in val if r.group not in calib]
        what += f", less {n1 - len(val)} files of the {len(calib)} groups its calibration was fitted on"
    return val, what


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from verity.cli.main import EXIT_INPUT, EXIT_MISSING, EXIT_OK, EXIT_USAGE
    from verity.train.data import parse_equalize, parse_perturbations, read_dataset, stratified_subset

    eq = parse_equalize(args.equalize)
    perts = parse_perturbations(args.perturb)
    if args.limit is not None and args.limit <= 0:
        sys.stderr.write("verity eval: --limit must be positive\n")
        return EXIT_USAGE
    try:
        import numpy  # noqa: F401
        import tqdm  # noqa: F401
    except ModuleNotFoundError as e:  # pragma: no cover - core dependencies
        sys.stderr.write(f"verity eval: missing dependency {e.name}\n")
        return EXIT_MISSING
    if args.scores_from:
        return _from_scores(args)
    records = read_dataset(args.dataset)
    selection = []
    if args.heldout:
        records, what = _heldout(records, args.split_from or args.fusion, args.dataset)
        selection.append(what)
    if args.limit:
        n0 = len(records)
        records = stratified_subset(records, args.limit, seed=args.seed)
        selection.append(f"--limit {args.limit} of {n0} (balanced over labels, sources, groups; seed {args.seed})")
    out = Path(args.out)
    if args.synth_edited:
        from verity.eval.runner import make_synthetic_edits

        made, skipped = make_synthetic_edits(records, args.synth_edited, out / "synthetic_edited", seed=args.seed)
        records = list(records) + made
        selection.append(f"+{len(made)} synthetic edited images from the selection's authentic images")
    if not records:
        sys.stderr.write("verity eval: the dataset holds no images\n")
        return EXIT_USAGE

    from verity.pipeline import Pipeline

    detectors = [d.strip() for d in args.detectors.split(",") if d.strip()] if args.detectors else None
    try:
        fusion = _load_fusion(args.fusion) if args.fusion else None
        pipe = Pipeline(detectors, fusion=fusion)
        compare = _load_fusion(args.compare) if args.compare else None
    except FileNotFoundError as e:
        sys.stderr.write(f"verity eval: {e}\n")
        return EXIT_USAGE
    except KeyError as e:
        sys.stderr.write(f"verity eval: {e.args[0]}\n")
        return EXIT_USAGE
    except ValueError as e:
        sys.stderr.write(f"verity eval: bad fusion file: {e}\n")
        return EXIT_USAGE
    for name, why in pipe.skipped.items():
        sys.stderr.write(f"verity eval: skipping {name}: {why}\n")

    from verity.eval.report import write_outputs
    from verity.eval.runner import evaluate

    run_ = evaluate(records, pipe, eq, perts, progress=False if args.quiet else None)
    command = "verity eval " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["eval"] else ""
    doc = write_outputs(
        run_, out, dataset=str(args.dataset), command=command, selection="; ".join(selection),
        fusion=pipe.fusion.source, note=args.note,
    )
    _print_summary(doc, out)
    if compare is not None:
        _report_compare(run_, compare, out, dataset=str(args.dataset), command=command,
                        selection="; ".join(selection), note=args.note)
    if run_.unreadable:
        sys.stderr.write(f"verity eval: {len(run_.unreadable)} unreadable file(s), listed in {out / 'report.md'}\n")
        return EXIT_INPUT
    return EXIT_OK


def _load_fusion(spec):
    """``hand-set``, a file, or (``None``) the shipped fusion. Raises FileNotFoundError for a missing
    file and ValueError for a file that is not a fusion."""
    from pathlib import Path

    from verity.core.fusion import FusionModel

    if spec == HAND_SET:
        return FusionModel()
    if spec and not Path(spec).is_file():
        raise FileNotFoundError(f"fusion file not found: {spec}")
    return FusionModel.load(spec) if spec else FusionModel.load()


def _report_compare(base, compare, out, **meta) -> None:
    """Re-fuse ``base``'s recorded detector scores with ``compare`` and report them in ``out/compare``."""
    from verity.eval.report import write_outputs
    from verity.eval.runner import refuse

    cdoc = write_outputs(refuse(base, compare), out / "compare", fusion=compare.source + " (same detector scores as ../)",
                         **meta)
    print(f"compare ({compare.source}):")
    _print_summary(cdoc, out / "compare")


def _from_scores(args: argparse.Namespace) -> int:
    """``--scores-from``: fuse an earlier run's recorded detector scores with --fusion (and --compare)."""
    import shlex
    from pathlib import Path

    from verity.cli.main import EXIT_OK, EXIT_USAGE
    from verity.eval.report import write_outputs
    from verity.eval.runner import load_predictions, refuse

    try:
        fusion = _load_fusion(args.fusion)
        compare = _load_fusion(args.compare) if args.compare else None
    except (FileNotFoundError, ValueError) as e:
        sys.stderr.write(f"verity eval: {e}\n")
        return EXIT_USAGE
    base = load_predictions(args.scores_from)  # DatasetError -> usage error in verity.cli.main
    out = Path(args.out)
    command = "verity eval " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["eval"] else ""
    selection = f"images, labels and detector scores of {args.scores_from} (no detector was run)"
    doc = write_outputs(refuse(base, fusion), out, dataset=str(args.dataset), command=command, selection=selection,
                        fusion=fusion.source, note=args.note)
    _print_summary(doc, out)
    if compare is not None:
        _report_compare(base, compare, out, dataset=str(args.dataset), command=command, selection=selection,
                        note=args.note)
    return EXIT_OK


def _print_summary(doc, out) -> None:
    def f(x, pct=False):
        return "n/a" if x is None else (f"{100 * x:.1f}%" if pct else f"{x:.3f}")

    for v, m in doc["variants"].items():
        a = m["detection"]["any_fake"]
        per = ", ".join(f"{c} {f(r['auc'])}" for c, r in m["detection"].items() if c != "any_fake")
        print(f"{v:<12} n={m['n']:<5} acc {f(m['accuracy'], True)}  FPR {f(m['fpr_authentic'], True)}  "
              f"ECE {f(m['ece'])} (floor {f(m.get('ece_noise_floor'))})  AUC any-fake {f(a['auc'])} ({per})")
    for v, s in doc["stability"].items():
        print(f"{v:<12} verdict unchanged {f(s['unchanged'], True)}  FPR authentic {f(s['fpr_authentic'], True)}")
    print(f"report: {out / 'report.md'}")
