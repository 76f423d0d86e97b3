"""Speed and size cost of C2PA signing and verification (verity sign / verity verify), offline.

    .venv/bin/python benchmarks/bench_c2pa.py [--repeats 7] [--photo PATH]

For each format and size: median wall and CPU time of ``verity.provenance.c2pa.sign`` (bytes in,
signed bytes out) and of ``read`` (full validation against a trust anchor), after one warm-up
call, and the file-size growth without and with a thumbnail. Images are textured synthetic images
(``verity.lab.edits.textured_image``) unless ``--photo`` gives a real one, which is resized to each
size. Signing uses a fresh ``make_test_pki`` chain (leaf + intermediate, ES256).
"""

from __future__ import annotations

import argparse
import io
import platform
import statistics
import time


def _encode(img, fmt: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    kw = {"JPEG": {"quality": 90}, "WEBP": {"quality": 90}, "PNG": {"compress_level": 6}}[fmt]
    Image.fromarray(img).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _version() -> str:
    from importlib.metadata import version

    return version("c2pa-python")


def _time(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def main(argv: list[str] | None = None) -> None:
    import numpy as np

    from verity.lab.edits import textured_image
    from verity.provenance import c2pa as prov

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--photo", help="a real photo to resize instead of the synthetic texture")
    ap.add_argument("--sizes", default="1155x866,4000x3000", help="WxH list")
    ap.add_argument("--files", nargs="*", default=[], help="also sign these files exactly as they are")
    a = ap.parse_args(argv)
    pki = prov.make_test_pki()
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}, c2pa-python {_version()}")
    print("| format | size | file | sign wall | sign CPU | verify wall | verify CPU | growth | growth with thumbnail |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    cases = []
    for path in a.files:
        data = open(path, "rb").read()
        cases.append((prov.sniff_media(data), path.rsplit("/", 1)[-1], data))
    for size in a.sizes.split(",") if a.sizes else []:
        w, h = (int(v) for v in size.split("x"))
        if a.photo:
            from PIL import Image

            img = np.asarray(Image.open(a.photo).convert("RGB").resize((w, h), Image.LANCZOS))
        else:
            img = textured_image(np.random.default_rng(0), (h, w))
        cases += [(fmt, f"{w}x{h}", _encode(img, fmt)) for fmt in ("JPEG", "PNG", "WEBP")]
    for fmt, label, data in cases:

        def sign(thumbnail: bool = False, data=data, fmt=fmt) -> bytes:
            return prov.sign(data, fmt, cert_chain=pki.chain_pem, private_key=pki.key_pem,
                             digital_source_type="digitalCapture", thumbnail=thumbnail)  # fmt: skip

        signed = sign()
        assert prov.read(signed, fmt, trust_anchors=pki.root_pem).validation_state == "Trusted"
        sw, sc = _time(sign, a.repeats)
        vw, vc = _time(lambda s=signed, f=fmt: prov.read(s, f, trust_anchors=pki.root_pem), a.repeats)
        grow = len(signed) - len(data)
        grow_t = len(sign(True)) - len(data)
        print(f"| {fmt} | {label} | {len(data) / 1e6:.2f} MB | {sw * 1e3:.1f} ms | {sc * 1e3:.1f} ms | "
              f"{vw * 1e3:.1f} ms | {vc * 1e3:.1f} ms | +{grow:,} B ({100 * grow / len(data):.2f}%) | "
              f"+{grow_t:,} B ({100 * grow_t / len(data):.2f}%) |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
