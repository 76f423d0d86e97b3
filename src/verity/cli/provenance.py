"""Content Credentials (C2PA) on the command line:

* ``verity verify FILE... [--trust-anchors PEM] [--allow-remote] [--json] [--require STATE]``
* ``verity sign FILE --cert CHAIN.pem --key KEY.pem --out OUT [--ai-generated | --source-type T]
  [--action A]... [--parent FILE]``
* ``verity certs init DIR``: a local test root, intermediate and ES256 signing certificate.

Everything runs offline (c2pa-python); a manifest that the file only links to is fetched only with
``--allow-remote``. Exit codes are listed in each command's ``--help`` and in docs/provenance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

#: ``verify --require``: at least one file did not reach the required state.
EXIT_UNMET = 5

#: Folder expansion for ``verify``: images and the video containers c2pa reads.
MEDIA_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".gif", ".avif", ".heic", ".heif",
                  ".mp4", ".m4v", ".mov")  # fmt: skip

#: C2PA 2.x standard actions accepted by ``sign --action`` (short names without ``c2pa.`` work too).
ACTIONS = (
    "c2pa.edited", "c2pa.cropped", "c2pa.resized", "c2pa.color_adjustments", "c2pa.filtered", "c2pa.drawing",
    "c2pa.orientation", "c2pa.converted", "c2pa.transcoded", "c2pa.repackaged", "c2pa.edited.metadata",
    "c2pa.published", "c2pa.redacted", "c2pa.deleted", "c2pa.translated", "c2pa.watermarked", "c2pa.unknown",
    "c2pa.created",
)  # fmt: skip
#: Actions that need an ingredient verity sign cannot describe (c2pa marks them Invalid without one).
NEEDS_INGREDIENT = ("c2pa.placed", "c2pa.removed", "c2pa.opened")

VERIFY_EPILOG = (
    "States: Trusted (signature and content hashes check out, the signer chains to a --trust-anchors root), "
    "Valid (they check out, but the signer's identity is self-asserted), Invalid (the content or the manifest "
    "changed after signing, or the signature is unusable). A file without a manifest is reported as "
    "'No Content Credentials found' (not an error). Exit codes: 0 every file was read (whatever its state); "
    "2 usage error (bad option, unreadable --trust-anchors); 3 one or more files could not be read or are not "
    "media files (the others are still reported); 4 c2pa-python is not installed; 5 with --require, a file "
    "did not reach the required state."
)
SIGN_EPILOG = (
    "Without --ai-generated/--source-type the manifest makes no claim about how the image was made: the input "
    "is recorded as the parent ingredient (c2pa.opened). An input that already has Content Credentials, or "
    "--parent FILE, becomes the parent ingredient and its history is kept. Exit codes: 0 signed; 2 usage error "
    "(bad option, certificate or key unreadable or not matching, output exists without --force); 3 the input "
    "or --parent cannot be read or cannot carry a manifest; 4 c2pa-python is not installed; 1 signing failed."
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="read and validate Content Credentials (C2PA): who signed, what they declared, is it intact",
        description="Read and validate the C2PA manifest of images and videos (JPEG, PNG, WebP, TIFF, GIF, "
        "MP4, MOV...), offline: validation state with every code explained, signer, time, claim generator, "
        "actions, digital source type, the ingredient tree (edit history) and whether the content still "
        "matches its signed hash.",
        epilog=VERIFY_EPILOG,
    )
    p.add_argument("paths", nargs="+", metavar="FILE", help="files or folders (searched recursively)")
    p.add_argument("--trust-anchors", metavar="PEM", help="root certificates to trust (PEM file); default "
                   "$VERITY_C2PA_TRUST_ANCHORS; without anchors a good signature is Valid, never Trusted")
    p.add_argument("--allow-remote", action="store_true",
                   help="fetch a manifest the file only links to (network); off: the link is reported")
    p.add_argument("--json", action="store_true", help="one JSON object per file (JSON Lines, docs/schema.md)")
    p.add_argument("--require", choices=("valid", "trusted"),
                   help="exit 5 unless every file has a manifest that is at least Valid (or Trusted)")
    p.add_argument("--codes", action="store_true", help="also list the success codes")
    p.add_argument("--max-mb", type=float, default=500.0, help="largest file accepted, MB (default 500)")
    p.set_defaults(func=run_verify)

    s = sub.add_parser(
        "sign",
        help="embed signed Content Credentials (C2PA) in an image or video",
        description="Sign FILE with a C2PA manifest and write it to OUT. No thumbnail is embedded unless "
        "--thumbnail, so the file grows by the manifest and certificate chain only (a few KB).",
        epilog=SIGN_EPILOG,
    )
    s.add_argument("file", metavar="FILE")
    s.add_argument("--cert", required=True, metavar="CHAIN.pem", help="signing certificate chain, leaf first (PEM)")
    s.add_argument("--key", required=True, metavar="KEY.pem", help="the signing certificate's private key (PEM)")
    s.add_argument("--out", required=True, metavar="OUT", help="where to write the signed file")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--ai-generated", action="store_true",
                   help="declare the digital source type trainedAlgorithmicMedia (made by a generative model)")
    g.add_argument("--source-type", metavar="TERM",
                   help="declare an IPTC digital source type (digitalCapture, digitalCreation, "
                   "compositeWithTrainedAlgorithmicMedia, ...)")
    s.add_argument("--action", action="append", default=[], metavar="ACTION",
                   help="record an action (repeatable): c2pa.edited, c2pa.cropped, c2pa.resized, "
                   "c2pa.color_adjustments, ...; 'cropped' means c2pa.cropped")
    s.add_argument("--parent", metavar="FILE", help="the file this one was made from (kept as parentOf ingredient)")
    s.add_argument("--title", help="manifest title (default: OUT's file name)")
    s.add_argument("--generator", default="verity", help="claim generator name (default verity)")
    s.add_argument("--alg", default="es256", help="signature algorithm matching the key (default es256)")
    s.add_argument("--thumbnail", action="store_true", help="embed a thumbnail in the manifest (larger file)")
    s.add_argument("--force", "-f", action="store_true", help="overwrite OUT if it exists")
    s.add_argument("--json", action="store_true", help="print a JSON summary")
    s.set_defaults(func=run_sign)

    c = sub.add_parser(
        "certs",
        help="test certificates for signing (verity certs init DIR)",
        description="Make certificates to try signing with. They prove nothing about identity.",
    )
    csub = c.add_subparsers(dest="certs_command", metavar="SUBCOMMAND", parser_class=type(c))
    ci = csub.add_parser(
        "init",
        help="create a local test root, intermediate and ES256 signing certificate",
        description="Create DIR/root.pem (the trust anchor), intermediate.pem, chain.pem (signing certificate "
        "+ intermediate, for --cert) and key.pem (its private key, mode 0600, for --key). The CA keys are "
        "discarded. Readers see Trusted only when they pass root.pem as --trust-anchors.",
        epilog="Exit codes: 0 created; 2 the files exist (use --force) or DIR cannot be written.",
    )
    ci.add_argument("dir", metavar="DIR")
    ci.add_argument("--name", default="verity test signer", help="signer common name")
    ci.add_argument("--org", default="verity local test CA (untrusted)", help="organisation in every certificate")
    ci.add_argument("--days", type=int, default=365, help="validity of the signing certificate (default 365)")
    ci.add_argument("--force", "-f", action="store_true", help="replace existing files")
    ci.set_defaults(func=run_certs_init)
    c.set_defaults(func=lambda a: (c.print_help(), 2)[1])


# ------------------------------------------------------------------------------------------------
# verify
# ------------------------------------------------------------------------------------------------


def _expand(paths: list[str]) -> list[str]:
    out: list[str] = []
    for s in paths:
        p = Path(s)
        if p.is_dir():
            out.extend(str(f) for f in sorted(p.rglob("*")) if f.is_file() and f.suffix.lower() in MEDIA_SUFFIXES)
        else:
            out.append(s)
    return out


def _err(cmd: str, msg: str) -> None:
    sys.stderr.write(f"verity {cmd}: {msg}\n")


def _check_pem(path: str | None, what: str, cmd: str) -> bytes | None:
    """Read a PEM argument; ``None`` after printing one line when it is unusable."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        _err(cmd, f"{what} {path}: {e.strerror or e}")
        return None
    if b"-----BEGIN" not in data:
        _err(cmd, f"{what} {path}: not a PEM file")
        return None
    return data


def run_verify(args: argparse.Namespace) -> int:
    from verity.cli.main import EXIT_INPUT, EXIT_MISSING, EXIT_OK, EXIT_USAGE
    from verity.core.errors import InputError
    from verity.core.io import Limits, read_bytes

    try:
        from verity.provenance import c2pa as prov

        prov._c2pa()
    except Exception as e:  # noqa: BLE001 - C2paUnavailable
        _err("verify", str(e))
        return EXIT_MISSING
    anchors = args.trust_anchors or os.environ.get(prov.TRUST_ENV) or None
    if anchors is not None:
        pem = _check_pem(anchors, "--trust-anchors", "verify")
        if pem is None:
            return EXIT_USAGE
        anchors = pem.decode("ascii", "replace")
        if "CERTIFICATE" not in anchors:
            _err("verify", f"--trust-anchors {args.trust_anchors}: contains no certificate")
            return EXIT_USAGE
    paths = _expand(args.paths)
    if not paths:
        _err("verify", "no media files found in the given folders")
        return EXIT_USAGE
    limits = Limits(max_bytes=int(args.max_mb * 1024 * 1024))
    failed = unmet = 0
    for path in paths:
        try:
            data = read_bytes(path, limits)
            if not data:
                raise InputError("file is empty", "empty")
            doc = _verify_one(prov, data, anchors, args.allow_remote)
        except InputError as e:
            failed += 1
            _err("verify", f"{path}: {e}")
            if args.json:
                print(json.dumps({"schema_version": "1.0", "path": path, "credentials": None,
                                  "error": {"code": e.code, "message": str(e)}}), flush=True)  # fmt: skip
            continue
        doc = {"schema_version": "1.0", "path": path, **doc}
        if args.require and (doc["state"] not in (("Trusted",) if args.require == "trusted" else ("Trusted", "Valid"))):
            unmet += 1
        if args.json:
            print(json.dumps(doc), flush=True)
        else:
            _print_human(doc, sys.stdout, show_success=args.codes)
    if failed:
        return EXIT_INPUT
    return EXIT_UNMET if unmet else EXIT_OK


def _verify_one(prov, data: bytes, anchors: str | None, allow_remote: bool) -> dict:
    import hashlib

    from verity.core.errors import InputError

    fmt = prov.sniff_media(data)
    base = {"format": fmt, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    if fmt is None:
        raise InputError("not a supported media file (unknown format)", "not_media")
    if fmt not in prov.MIME:  # BMP: a format that cannot carry a manifest
        info = prov.C2paInfo()
        doc = prov.describe(info)
        doc["summary"] = f"No Content Credentials found ({fmt} files cannot carry them)."
        return {**base, **doc}
    info = prov.read(data, fmt, trust_anchors=anchors, allow_remote=allow_remote)
    if not info.present and info.error and "could not be parsed" in info.error and not prov.has_c2pa_marker(data):
        raise InputError(f"cannot be parsed as {fmt} ({info.error})", "corrupt")
    return {**base, **prov.describe(info, allow_remote=allow_remote)}


def _node_line(n: dict, is_root: bool) -> str:
    title = f'"{n["title"]}"' if n.get("title") else "(untitled)"
    rel = "this file" if is_root else n.get("relationship") or "ingredient"
    if not n.get("manifest"):
        return f"{rel} {title}: no Content Credentials of its own"
    bits = [f"{rel} {title} [{n.get('state') or '?'}]"]
    if n.get("signer"):
        bits.append(f"signed by {n['signer']}")
    acts = []
    for a in n.get("actions") or []:
        acts.append(a["action"] + (f" ({a['digital_source_type']})" if a.get("digital_source_type") else ""))
    if acts:
        bits.append(", ".join(acts))
    bad = [c for c in n.get("failure_codes") or [] if c != "signingCredential.untrusted"]
    if bad:
        bits.append("fails: " + ", ".join(bad))
    return "; ".join(bits)


def _tree(n: dict, prefix: str, out, is_root: bool = False) -> None:
    kids = n.get("ingredients") or []
    for i, k in enumerate(kids):
        last = i == len(kids) - 1
        out.write(f"{prefix}{'`-- ' if last else '|-- '}{_node_line(k, False)}\n")
        _tree(k, prefix + ("    " if last else "|   "), out)
    if n.get("truncated"):
        out.write(f"{prefix}... (history deeper than shown, or a cycle)\n")


def _print_human(doc: dict, out, show_success: bool = False) -> None:
    from verity.provenance.c2pa import explain_code

    state = doc.get("state")
    head = {"Trusted": "TRUSTED", "Valid": "VALID (signer not trusted)", "Invalid": "INVALID"}.get(state or "", None)
    if doc["credentials"] != "found":
        out.write(f"{doc['path']}: {doc['summary']}\n")
        return
    out.write(f"{doc['path']}: Content Credentials {head}\n")
    out.write(f"  {doc['summary']}\n")
    out.write(f"  state       {state}: {doc.get('state_meaning') or ''}\n")
    ch = doc.get("content_hash")
    out.write("  content     " + {"match": "matches its signed hash (unchanged since signing)",
                                   "mismatch": "DOES NOT match its signed hash (changed after signing)"}.get(
        ch, "no content hash was checked") + "\n")  # fmt: skip
    sg = doc.get("signer") or {}
    who = sg.get("name") or "(no name)"
    if sg.get("issuer"):
        who += f", issued by {sg['issuer']}"
    if sg.get("algorithm"):
        who += f" [{sg['algorithm']}]"
    out.write(f"  signer      {who}\n")
    whens = [a["when"] for a in doc.get("actions") or [] if a.get("when")]
    if doc.get("signed_at"):
        out.write(f"  time        {doc['signed_at']} (trusted time stamp)\n")
    else:
        out.write("  time        no trusted time stamp" + (f"; the actions declare {whens[0]} (self-declared)" if whens else "") + "\n")
    if doc.get("claim_generator"):
        out.write(f"  generator   {doc['claim_generator']}\n")
    if doc.get("title"):
        out.write(f"  title       {doc['title']}\n")
    dst = doc.get("digital_source_types") or []
    out.write("  source      " + ("; ".join(f"{d['term']}: {d['meaning']}" for d in dst) if dst else "not declared") + "\n")
    for i, a in enumerate(doc.get("actions") or []):
        extra = ", ".join(x for x in (a.get("software_agent"), a.get("when")) if x)
        out.write(f"  {'actions' if i == 0 else '':<11} {a['action']}" + (f" ({extra})" if extra else "") + "\n")
    hist = doc.get("history") or {}
    if hist.get("ingredients"):
        out.write("  history     (ingredients, newest first)\n")
        out.write(f"    {_node_line(hist, True)}\n")
        _tree(hist, "    ", out)
    codes = doc.get("codes") or {}
    shown = [("x", c) for c in codes.get("failure", [])] + [("i", c) for c in codes.get("informational", [])]
    if show_success:
        shown += [("ok", c) for c in codes.get("success", [])]
    for mark, c in shown:
        out.write(f"  {mark:>2} {c['code']}: {c.get('meaning') or explain_code(c['code'], c.get('explanation'))}\n")
    if doc.get("remote_url"):
        out.write(f"  remote      manifest fetched from {doc['remote_url']}\n")


# ------------------------------------------------------------------------------------------------
# sign
# ------------------------------------------------------------------------------------------------


def _normalise_action(a: str) -> str:
    a = a.strip()
    if "." not in a:
        a = "c2pa." + a
    return a


def run_sign(args: argparse.Namespace) -> int:
    from verity.cli.main import EXIT_ERROR, EXIT_INPUT, EXIT_MISSING, EXIT_OK, EXIT_USAGE
    from verity.core.errors import InputError
    from verity.core.io import Limits, read_bytes

    try:
        from verity.provenance import c2pa as prov

        prov._c2pa()
    except Exception as e:  # noqa: BLE001
        _err("sign", str(e))
        return EXIT_MISSING
    actions = []
    for a in args.action:
        name = _normalise_action(a)
        if name in NEEDS_INGREDIENT:
            _err("sign", f"--action {name} needs an ingredient that verity sign cannot describe "
                 "(c2pa.opened is added for --parent; use c2pa.edited for other changes)")  # fmt: skip
            return EXIT_USAGE
        if name.startswith("c2pa.") and name not in ACTIONS:
            _err("sign", f"--action {a}: not a C2PA action (known: {', '.join(x[5:] for x in ACTIONS)}; "
                 "custom actions need a reverse-domain name such as com.example.retouch)")  # fmt: skip
            return EXIT_USAGE
        actions.append({"action": name})
    source = "trainedAlgorithmicMedia" if args.ai_generated else args.source_type
    if source and "://" not in source and source not in prov.SOURCE_TYPE_MEANINGS:
        _err("sign", f"--source-type {source}: not an IPTC digital source type "
             f"(known: {', '.join(prov.SOURCE_TYPE_MEANINGS)}; or pass a full URI)")  # fmt: skip
        return EXIT_USAGE
    if any(a["action"] == "c2pa.created" for a in actions) and not source:
        _err("sign", "--action c2pa.created needs --source-type or --ai-generated (how was it created?)")
        return EXIT_USAGE
    actions = [a for a in actions if a["action"] != "c2pa.created"]
    chain = _check_pem(args.cert, "--cert", "sign")
    key = _check_pem(args.key, "--key", "sign")
    if chain is None or key is None:
        return EXIT_USAGE
    out = Path(args.out)
    same = out.exists() and Path(args.file).exists() and out.resolve() == Path(args.file).resolve()
    if out.exists() and not args.force:
        _err("sign", f"{out} exists" + (" (it is the input)" if same else "") + "; use --force to overwrite")
        return EXIT_USAGE
    if out.is_dir():
        _err("sign", f"--out {out} is a directory")
        return EXIT_USAGE
    limits = Limits(max_bytes=2 * 1024**3)
    try:
        data = read_bytes(args.file, limits)
        if not data:
            raise InputError("file is empty", "empty")
    except InputError as e:
        _err("sign", f"{args.file}: {e}")
        return EXIT_INPUT
    fmt = prov.sniff_media(data)
    if fmt not in prov.MIME:
        _err("sign", f"{args.file}: cannot carry Content Credentials ({fmt or 'unknown format'}; "
             f"supported: {', '.join(prov.MIME)})")  # fmt: skip
        return EXIT_INPUT
    parent = parent_title = None
    note = ""
    existing = prov.read(data, fmt) if prov.has_c2pa_marker(data) else prov.C2paInfo()
    if args.parent:
        try:
            parent = read_bytes(args.parent, limits)
        except InputError as e:
            _err("sign", f"--parent {args.parent}: {e}")
            return EXIT_INPUT
        if prov.sniff_media(parent) not in prov.MIME:
            _err("sign", f"--parent {args.parent}: not a media file c2pa can read")
            return EXIT_INPUT
        parent_title = Path(args.parent).name
        note = f"parent ingredient: {parent_title}"
        if existing.present:
            note += " (the input's own Content Credentials are replaced; sign without --parent to keep them)"
    elif existing.present:
        parent, parent_title = data, Path(args.file).name
        note = "the input's Content Credentials are kept as the parent ingredient"
        if existing.validation_state == "Invalid":
            note += " (they fail validation, and the history will say so)"
    elif not source:
        parent, parent_title = data, Path(args.file).name
        note = ("no digital source type declared (use --source-type digitalCapture for a camera photo, "
                "--ai-generated for a generated image): the input is recorded as the parent ingredient")  # fmt: skip
    from verity import __version__

    try:
        signed = prov.sign(
            data, fmt, cert_chain=chain, private_key=key, digital_source_type=source, actions=actions,
            claim_generator=args.generator, claim_generator_version=__version__ if args.generator == "verity" else "1",
            title=args.title or out.name, alg=args.alg, thumbnail=args.thumbnail, parent=parent,
            parent_title=parent_title,
        )  # fmt: skip
    except prov.C2paSignError as e:
        msg = str(e)
        _err("sign", msg)
        usage = ("private key" in msg or "certificate" in msg.lower() or "cannot load" in msg)
        return EXIT_USAGE if usage else EXIT_ERROR
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.verity-{os.getpid()}.tmp")
        tmp.write_bytes(signed)
        os.replace(tmp, out)
    except OSError as e:
        _err("sign", f"cannot write {out}: {e.strerror or e}")
        return EXIT_ERROR
    grow = len(signed) - len(data)
    summary = {
        "input": args.file, "out": str(out), "format": fmt, "bytes_in": len(data), "bytes_out": len(signed),
        "growth_bytes": grow, "growth_percent": round(100.0 * grow / max(len(data), 1), 2),
        "digital_source_type": source, "actions": (["c2pa.opened"] if parent is not None else
                                                   (["c2pa.created"] if source else [])) + [a["action"] for a in actions]
        + (["c2pa.edited"] if parent is not None and source and not actions else []),
        "parent": parent_title, "note": note or None, "thumbnail": bool(args.thumbnail),
    }  # fmt: skip
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"signed {args.file} -> {out}: {len(data):,} -> {len(signed):,} bytes "
              f"(+{grow:,}, +{summary['growth_percent']:.1f}%)")  # fmt: skip
        print(f"  declares    {source or 'no digital source type'}; actions {', '.join(summary['actions'])}")
        if note:
            print(f"  note        {note}")
        print(f"  check it    verity verify {out} --trust-anchors ROOT.pem")
    return EXIT_OK


# ------------------------------------------------------------------------------------------------
# certs init
# ------------------------------------------------------------------------------------------------


def run_certs_init(args: argparse.Namespace) -> int:
    from verity.cli.main import EXIT_OK, EXIT_USAGE
    from verity.core.errors import VerityError
    from verity.provenance.c2pa import write_test_pki

    if args.days < 1:
        _err("certs init", "--days must be at least 1")
        return EXIT_USAGE
    try:
        paths = write_test_pki(args.dir, force=args.force, common_name=args.name, organization=args.org, days=args.days)
    except VerityError as e:
        _err("certs init", str(e))
        return EXIT_USAGE
    d = Path(args.dir)
    print(f"created a local test CA in {d} (for trying verity sign; it proves nothing about identity):")
    print(f"  {paths['root.pem']}          trust anchor: verity verify --trust-anchors {paths['root.pem']}")
    print(f"  {paths['intermediate.pem']}  intermediate CA (issued the signing certificate)")
    print(f"  {paths['chain.pem']}         signing certificate + intermediate: verity sign --cert")
    print(f"  {paths['key.pem']}           its private key (mode 0600): verity sign --key")
    print(f"try: verity sign photo.jpg --cert {paths['chain.pem']} --key {paths['key.pem']} --out signed.jpg")
    return EXIT_OK
