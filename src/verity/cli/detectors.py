"""``verity detectors``: list the registered detectors."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detectors", help="list the registered detectors", description="List every detector.")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from verity.core.registry import get_detector_class, list_detectors

    rows = []
    for name in list_detectors():
        c = get_detector_class(name)
        doc = (c.__doc__ or "").strip().splitlines()[0] if c.__doc__ else ""
        rows.append({"name": name, "kind": c.kind, "labels": list(c.labels), "default": c.default,
                     "available": c.available(), "description": doc})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            flag = "" if r["available"] else "  (missing optional dependency)"
            print(f"{r['name']:<24} {r['kind']:<12} {','.join(r['labels']):<28} {r['description']}{flag}")
    return 0
