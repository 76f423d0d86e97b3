"""``verity train detector|fusion|faces|lofo|semantic-head|zed``: reproduce the shipped weights (needs the ``[train]`` extra).

Each trainer lives in :mod:`verity.train` as a module exposing ``add_arguments(parser)`` and
``main(args) -> int``, and imports torch only inside ``main``.
"""

from __future__ import annotations

import argparse
import importlib

TRAINERS = {
    "detector": ("verity.train.detector", "train the learned AI-image detectors and export ONNX"),
    "fusion": ("verity.train.fusion", "refit the fusion weights on a validation split"),
    "faces": ("verity.train.faces", "train the self-blended face-manipulation detector"),
    "lofo": ("verity.train.lofo", "leave-one-family-out and leave-one-source-out evaluation of the semantic recipe (issue 12)"),
    "semantic-head": ("verity.train.semantic", "train the semantic branch (binary + generator-lineage heads) on the public corpus"),
    "zed": ("verity.train.zed", "train and measure the zero-shot coding-surprise coder (experiment; real photos only)"),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train verity's models (needs the [train] extra)",
                       description="Reproduce verity's shipped weights from data.")
    tsub = p.add_subparsers(dest="trainer", metavar="WHAT", parser_class=type(p))
    from verity.cli.main import CURRENT_ARGV

    invoked = "train" in CURRENT_ARGV[:1]
    for name, (modname, helptext) in TRAINERS.items():
        if not invoked:  # trainer modules import numpy: only load them for `verity train ...`
            tsub.add_parser(name, help=helptext)
            continue
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name == modname:
                continue
            raise
        tp = tsub.add_parser(name, help=helptext, description=helptext)
        mod.add_arguments(tp)
        tp.set_defaults(func=mod.main)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])
