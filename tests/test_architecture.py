"""The layering written down in docs/architecture.md holds for every import in src/verity."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "verity"
DOC = ROOT / "docs" / "architecture.md"

#: (importing module, imported package): the documented exceptions
EXCEPTIONS = {("verity.core.registry", "detectors")}


def layers() -> dict[str, int]:
    table = {}
    for m in re.finditer(r"^\| (\d+) \| ([^|]+) \|", DOC.read_text(), re.M):
        for name in m.group(2).split(","):
            table[name.strip().replace("\\_", "_")] = int(m.group(1))
    return table


def package_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imports(path: Path, src: Path = SRC):
    """Yield (line, imported top-level verity package) for every import in ``path`` under ``src``."""
    rel = path.relative_to(src)
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ["verity", *rel.parts[: len(rel.parts) - node.level]]
                names = [".".join(base + ([node.module] if node.module else []))]
                if not node.module:  # from . import x, y
                    names = [f"{names[0]}.{a.name}" for a in node.names]
            else:
                mod = node.module or ""
                names = [mod] if mod != "verity" else [f"verity.{a.name}" for a in node.names]
        for n in names:
            parts = n.split(".")
            if parts[0] == "verity" and len(parts) > 1:
                yield node.lineno, parts[1]


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(["verity", *parts])


def test_doc_table_parses():
    table = layers()
    assert table["core"] == 0 and table["cli"] == max(table.values())
    assert {"ops", "detectors", "pipeline", "api"} <= set(table)


def test_every_package_has_a_layer():
    table = layers()
    pkgs = {package_of(p) for p in SRC.rglob("*.py")} - {"__init__"}
    missing = sorted(pkgs - set(table))
    assert not missing, f"give these packages a row in docs/architecture.md: {missing}"


def test_no_import_goes_up_a_layer():
    table = layers()
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        src_pkg = package_of(path)
        if src_pkg == "__init__" or src_pkg not in table:
            continue
        for line, tgt in imports(path):
            if tgt == src_pkg or tgt not in table or (module_name(path), tgt) in EXCEPTIONS:
                continue
            if table[tgt] > table[src_pkg]:
                bad.append(f"{path.relative_to(ROOT)}:{line} ({src_pkg}, layer {table[src_pkg]}) "
                           f"imports {tgt} (layer {table[tgt]})")
    assert not bad, "imports that go up a layer:\n" + "\n".join(bad)


def test_checker_sees_an_upward_import(tmp_path):
    """The walker finds absolute, relative and function-level imports (so the test can fail)."""
    fake = tmp_path / "verity" / "core" / "probe.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("import numpy\ndef f():\n    from verity.cli import main\n    from ..api import app\n"
                    "    from verity import web\n")
    assert [t for _, t in imports(fake, tmp_path / "verity")] == ["cli", "api", "web"]


def test_core_imports_no_heavy_library():
    code = (
        "import sys, pkgutil, importlib, verity.core as c\n"
        "for m in pkgutil.iter_modules(c.__path__): importlib.import_module('verity.core.' + m.name)\n"
        "bad = [m for m in ('torch', 'onnxruntime', 'sklearn') if m in sys.modules]\n"
        "print(bad); sys.exit(bool(bad))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
