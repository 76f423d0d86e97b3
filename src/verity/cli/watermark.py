"""``verity watermark embed|detect``: verity's invisible watermark (docs/watermark.md).

Exit codes: 0 done (for ``detect`` whether or not a mark was found; ``--json`` says), 2 usage error
(bad message, key, strength or output name), 3 an input could not be read or the output not
written, 1 internal error.
"""

from __future__ import annotations

import argparse
import sys

_OUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF",
                ".tiff": "TIFF", ".bmp": "BMP"}  # fmt: skip


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "watermark",
        help="embed or detect verity's invisible watermark",
        description="Embed a 1-8 byte message as an invisible watermark that survives JPEG, rescaling, "
        "crops and brightness changes, or detect one with the chance that an unmarked image matches.",
        epilog="Exit codes: 0 done, 1 internal error, 2 usage error, 3 input unreadable or output not written.",
    )
    wsub = p.add_subparsers(dest="wm_command", metavar="ACTION", parser_class=type(p))
    e = wsub.add_parser("embed", help="mark an image", description="Mark IMG with a message; write OUT.")
    e.add_argument("image", metavar="IMG")
    e.add_argument("--message", required=True, metavar="HEX", help="1 to 8 bytes as 2-16 hex digits")
    e.add_argument("--out", required=True, metavar="OUT", help="output file; format from the extension "
                   "(.png lossless, .jpg/.jpeg, .webp lossless, .tif, .bmp)")  # fmt: skip
    e.add_argument("--key", default=None, help="secret key (default: verity's public key); detect needs the same")
    e.add_argument("--psnr", type=float, default=None, help="strength as PSNR in dB (default 38.5; higher is fainter)")
    e.add_argument("--quality", type=int, default=95, help="JPEG quality when OUT is a JPEG (default 95)")
    e.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    e.set_defaults(func=run_embed)
    d = wsub.add_parser("detect", help="look for a mark", description="Look for verity's mark (and the "
                        "known Stable Diffusion marks) in each IMG.")  # fmt: skip
    d.add_argument("images", nargs="+", metavar="IMG")
    d.add_argument("--key", default=None, help="the key the mark was made with")
    d.add_argument("--json", action="store_true", help="one JSON object per image")
    d.set_defaults(func=run_detect)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _load(path: str):
    from verity.core.errors import InputError
    from verity.core.io import load_sample

    try:
        s = load_sample(path)
    except InputError as e:
        return None, str(e)
    except OSError as e:
        return None, e.strerror or str(e)
    return s, None


def run_embed(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from verity.provenance import watermark as W

    def usage(msg: str) -> int:
        sys.stderr.write(f"verity watermark embed: {msg}\n")
        return 2

    try:
        message = W.parse_message(args.message)
    except W.WatermarkError as e:
        return usage(str(e))
    out = Path(args.out)
    fmt = _OUT_FORMATS.get(out.suffix.lower())
    if fmt is None:
        return usage(f"{out}: unknown output extension {out.suffix!r} (use {', '.join(sorted(_OUT_FORMATS))})")
    if not 1 <= args.quality <= 100:
        return usage(f"--quality must be 1..100, got {args.quality}")
    if os.path.exists(args.image) and out.exists() and os.path.samefile(args.image, out):
        return usage(f"{out}: refusing to overwrite the input; choose another --out")
    if out.exists() and not args.force:
        return usage(f"{out}: exists (use --force to overwrite)")
    if args.key is not None and not args.key:
        return usage("--key must not be empty")
    s, err = _load(args.image)
    if s is None:
        sys.stderr.write(f"verity watermark embed: {args.image}: {err}\n")
        return 3
    pixels = s.display_pixels()  # marked upright: the output carries no EXIF orientation
    try:
        r = W.embed(pixels, message, key=args.key or W.DEFAULT_KEY, psnr=W.DEFAULT_PSNR if args.psnr is None else args.psnr)
    except W.WatermarkError as e:
        if "image is" in str(e):
            sys.stderr.write(f"verity watermark embed: {args.image}: {e}\n")
            return 3
        return usage(str(e))
    img = Image.fromarray(r.image)
    if s.alpha is not None and fmt in ("PNG", "WEBP", "TIFF"):
        from verity.core.io import apply_orientation

        img.putalpha(Image.fromarray(np.ascontiguousarray(apply_orientation(s.alpha, s.orientation))))
    kw: dict = {}
    if fmt == "JPEG":
        kw = {"quality": args.quality, "subsampling": 0 if args.quality >= 90 else 2}
    elif fmt == "WEBP":
        kw = {"lossless": True}
    icc = s.info.get("icc_profile")
    if icc and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        kw["icc_profile"] = icc
    tmp = out.with_name(out.name + ".part")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        img.save(tmp, format=fmt, **kw)
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        sys.stderr.write(f"verity watermark embed: {out}: cannot write: {e.strerror or e}\n")
        return 3
    print(f"{out}: marked with {len(message)}-byte message {message.hex()} (PSNR {r.psnr:.1f} dB, {r.seconds:.2f} s)")
    return 0


def _p(log10_p: float) -> str:
    """A p-value for people: 0.091, 2e-46, 1e-400 (no underflow to 0)."""
    if log10_p > -4:
        return f"{10 ** log10_p:.2g}"
    m = 10 ** (log10_p - int(log10_p // 1))  # mantissa in [1, 10)
    return f"{m:.0f}e{int(log10_p // 1)}"


def run_detect(args: argparse.Namespace) -> int:
    import json

    from verity.provenance import watermark as W

    if args.key is not None and not args.key:
        sys.stderr.write("verity watermark detect: --key must not be empty\n")
        return 2
    rc = 0
    for path in args.images:
        s, err = _load(path)
        if s is None:
            sys.stderr.write(f"verity watermark detect: {path}: {err}\n")
            rc = 3
            continue
        try:
            d = W.detect(s.display_pixels(), key=args.key or W.DEFAULT_KEY)
        except W.WatermarkError as e:
            sys.stderr.write(f"verity watermark detect: {path}: {e}\n")
            rc = 3
            continue
        k = W.detect_known(s.pixels)
        if args.json:
            row = {"file": path, **d.to_dict(),
                   "known_mark": k.name, "known_mark_log10_p": round(k.log10_p, 2)}  # fmt: skip
            print(json.dumps(row))
            continue
        if d.status == "marked":
            line = f"{path}: WATERMARKED, message {d.message.hex()} (p = {_p(d.log10_p)}: chance an unmarked image matches this well)"
        elif d.status == "damaged":
            line = (f"{path}: a verity watermark is present (p = {_p(d.log10_p)}) but its message is damaged "
                    "beyond correction")  # fmt: skip
        else:
            line = f"{path}: no verity watermark (best match p = {_p(d.log10_p)}, needs < {W.P_THRESHOLD:g})"
        print(line)
        if k.name:
            print(f"  also carries the invisible watermark of {k.name} (invisible-watermark dwtDct, p = {_p(k.log10_p)})")
    return rc
