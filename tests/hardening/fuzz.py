"""Fuzz harness: loading, metadata / text-chunk parsing and the C2PA reader, with a seed corpus made by code.

Targets (each a function of one ``bytes`` input that must return normally; any exception it lets out
is a finding):

``load``      :func:`verity.core.io.decode` returns a well-formed Sample or raises ``InputError``
              with a one-line message, and no native decoder writes to file descriptor 2; the
              EXIF of a loaded sample is read without raising.
``metadata``  the raw-byte parsers of :mod:`verity.provenance.metadata` (PNG text chunks, IPTC IIM,
              XMP search and parsing, EXIF thumbnail, generator parameter blocks), then, on whatever
              decodes, the metadata detectors (generator_metadata, edit_history, exif_camera,
              exif_thumbnail, digital_source_type, jpeg_qtables).
``c2pa``      :func:`verity.provenance.c2pa.read` (never raises for bad files, by contract) and the
              ``c2pa`` detector; seeds include files signed with throw-away credentials.

Two drivers:

* atheris (coverage-guided, libFuzzer), when installed::

      python tests/hardening/fuzz.py load --atheris -- -max_total_time=60

* a plain mutation driver (no dependency; seeded, so a run is reproducible), which CI uses through
  ``tests/hardening/test_fuzz.py``::

      python tests/hardening/fuzz.py load --seconds 30 --seed 1 --findings out/fuzz

Findings are written as ``<target>-<sha1>.bin`` plus a ``.txt`` with the traceback; each one found so
far has a regression test in ``tests/hardening/test_fuzz.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import random
import signal
import struct
import sys
import time
import traceback
import zlib
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

#: Time one input may take before the mutation driver calls it a hang (seconds).
PER_INPUT_TIMEOUT = 10.0


# ------------------------------------------------------------------------------------ targets


def target_load(data: bytes) -> None:
    from verity.core.errors import InputError
    from verity.core.io import Limits, _NativeStderr, decode, read_exif

    native = _NativeStderr(enabled=True)  # a native decoder printing on fd 2 breaks one-line errors
    try:
        with native:
            s = decode(data, limits=Limits(max_bytes=20 << 20, max_pixels=4_000_000, max_frames=2000))
    except InputError as e:
        assert str(e) and "\n" not in str(e), f"InputError message is not one line: {str(e)!r}"
        assert e.code, "InputError without a code"
        assert not native.first_line, f"a decoder wrote to stderr: {native.first_line!r}"
        return
    assert not native.first_line, f"a decoder wrote to stderr: {native.first_line!r}"
    h, w, c = s.pixels.shape
    assert c == 3 and h > 0 and w > 0 and s.pixels.dtype.name == "uint8", s.pixels.shape
    assert s.alpha is None or s.alpha.shape == (h, w)
    assert 1 <= s.orientation <= 8 and s.frames >= 1 and s.bit_depth in (1, 2, 4, 8, 12, 16, 32)
    read_exif(s)
    s.display_pixels()


_META_DETECTORS = ("generator_metadata", "edit_history", "exif_camera", "exif_thumbnail", "digital_source_type",
                   "jpeg_qtables")
_DETS: dict[str, object] = {}


def _detector(name: str):
    if name not in _DETS:
        from verity.core.registry import create_detector

        _DETS[name] = create_detector(name)
    return _DETS[name]


def target_metadata(data: bytes) -> None:
    from verity.core.errors import InputError
    from verity.core.io import Limits, decode
    from verity.provenance import metadata as m

    for e in m.png_text_chunks(data):
        m.parse_generator_entry(e)
    m.parse_iim(data)
    x = m.find_xmp_in_bytes(data)
    if x:
        m.parse_xmp(x)
    m.parse_xmp(data[:65536].decode("utf-8", "replace"))
    m.exif_thumbnail(data)
    text = data[:20000].decode("utf-8", "replace")
    m.parse_a1111(text)
    m.parse_dream(text)
    m.find_generator_names(text)
    m.classify_software(text[:200])
    m.decode_user_comment(data[:2000])
    try:
        s = decode(data, limits=Limits(max_bytes=20 << 20, max_pixels=1_000_000, max_frames=500))
    except InputError:
        return
    m.sample_text_entries(s)
    m.sample_xmp(s)
    for name in _META_DETECTORS:
        det = _detector(name)
        if det.accepts(s):
            det.run(s)


def target_c2pa(data: bytes) -> None:
    from verity.core.errors import InputError
    from verity.core.io import Limits, decode, sniff_format
    from verity.provenance import c2pa

    info = c2pa.read(data, sniff_format(data[:16]))
    info.to_dict()
    try:
        s = decode(data, limits=Limits(max_bytes=20 << 20, max_pixels=1_000_000, max_frames=500))
    except InputError:
        return
    det = _detector("c2pa")
    if det.accepts(s):
        det.run(s)


TARGETS: dict[str, Callable[[bytes], None]] = {"load": target_load, "metadata": target_metadata, "c2pa": target_c2pa}


# --------------------------------------------------------------------------------- seed corpus


def _chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body) & 0xFFFFFFFF)


def _xmp_packet() -> bytes:
    return (b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
            b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
            b'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
            b'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" xmp:CreatorTool="Adobe Photoshop 25.0" '
            b'Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia">'
            b'<xmpMM:History xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/" xmlns:stEvt="http://ns.adobe.com/xap/1.0/sType/ResourceEvent#">'
            b'<rdf:Seq><rdf:li stEvt:action="saved" stEvt:softwareAgent="Adobe Photoshop 25.0"/></rdf:Seq></xmpMM:History>'
            b'</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>')


def _iptc() -> bytes:
    def rec(ds: int, val: bytes) -> bytes:
        return b"\x1c\x02" + bytes([ds]) + struct.pack(">H", len(val)) + val

    iim = rec(120, b"caption <b>x</b>") + rec(80, b"A. Byline") + rec(65, b"Midjourney") + rec(25, b"kw")
    block = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(iim)) + iim
    return b"Photoshop 3.0\x00" + block


A1111 = (b"a photo of a cat, best quality\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, "
         b"Seed: 1234, Size: 64x48, Model hash: abc123, Model: sd15")
COMFY = b'{"3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 20, "cfg": 7.5, "model": ["4", 0]}}, "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sdxl.safetensors"}}}'


def seeds(c2pa_signed: bool = True) -> list[bytes]:
    """Small valid files with rich metadata in every supported container (about 20)."""
    import numpy as np
    from PIL import Image, PngImagePlugin

    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    arr[:8, :8] = 255
    img = Image.fromarray(arr)
    out: list[bytes] = []

    thumb = io.BytesIO()
    img.resize((16, 12)).save(thumb, format="JPEG", quality=70)
    ex = Image.Exif()
    ex[0x010F], ex[0x0110], ex[0x0131], ex[0x0132] = "Canon", "Canon EOS 5D Mark IV", "GIMP 2.10", "2024:01:02 03:04:05"
    ex[0x0112] = 6
    exif_ifd = ex.get_ifd(0x8769)
    exif_ifd[0x9003] = "2024:01:02 03:04:05"
    exif_ifd[0x9286] = b"ASCII\x00\x00\x00a user comment"
    exif_ifd[0x829A] = (1, 200)
    exif_bytes = ex.tobytes()
    try:
        from verity.provenance.metadata import add_exif_thumbnail

        exif_with_thumb = add_exif_thumbnail(exif_bytes, thumb.getvalue())
    except Exception:  # noqa: BLE001
        exif_with_thumb = exif_bytes

    def save(fmt: str, im=img, **kw) -> bytes:
        b = io.BytesIO()
        im.save(b, format=fmt, **kw)
        return b.getvalue()

    jpeg = save("JPEG", exif=exif_with_thumb, quality=85)
    out.append(jpeg)
    xmp_seg = b"\xff\xe1" + struct.pack(">H", 2 + 29 + len(_xmp_packet())) + b"http://ns.adobe.com/xap/1.0/\x00" + _xmp_packet()
    iptc = _iptc()
    iptc_seg = b"\xff\xed" + struct.pack(">H", 2 + len(iptc)) + iptc
    com = b"\xff\xfe" + struct.pack(">H", 2 + len(A1111)) + A1111
    out.append(jpeg[:2] + xmp_seg + iptc_seg + com + jpeg[2:])
    out.append(save("JPEG", progressive=True, quality=60, subsampling=0))
    out.append(save("JPEG", im=img.convert("CMYK")))
    out.append(save("JPEG", im=img.convert("L"), quality=95))

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111.decode())
    info.add_text("prompt", COMFY.decode(), zip=True)
    info.add_itxt("XML:com.adobe.xmp", _xmp_packet().decode(), zip=False)
    info.add_text("Software", "Adobe Photoshop 25.0")
    png = save("PNG", pnginfo=info, exif=exif_bytes)
    out.append(png)
    out.append(save("PNG", im=img.convert("P")))
    out.append(save("PNG", im=img.convert("RGBA")))
    out.append(save("PNG", im=Image.fromarray((rng.integers(0, 65535, (12, 16))).astype(np.uint16))))
    ihdr_end = 33
    iccp = _chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(b"\x00" * 600))
    out.append(png[:ihdr_end] + iccp + png[ihdr_end:])

    out.append(save("WEBP", exif=exif_bytes, xmp=_xmp_packet(), quality=80))
    out.append(save("WEBP", lossless=True))
    out.append(save("TIFF", exif=exif_bytes))
    out.append(save("TIFF", compression="tiff_lzw"))
    out.append(save("BMP"))
    frames = [img, Image.fromarray(arr[::-1].copy())]
    b = io.BytesIO()
    frames[0].save(b, format="GIF", save_all=True, append_images=frames[1:], comment=b"made with DALL-E", loop=0)
    out.append(b.getvalue())

    if c2pa_signed:
        try:
            from verity.provenance import c2pa

            creds = c2pa.make_dev_credentials()
            for data, fmt in ((save("JPEG", quality=80), "JPEG"), (save("PNG"), "PNG")):
                out.append(c2pa.sign(data, fmt, cert_chain=creds.chain_pem, private_key=creds.key_pem,
                                     claim_generator="verity-fuzz"))
        except Exception:  # noqa: BLE001 - c2pa not installed: no signed seeds
            pass
    return out


# ----------------------------------------------------------------------------- mutation driver

_INTERESTING8 = (0, 1, 0x7F, 0x80, 0xFF)
_INTERESTING32 = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFF, 0x10000, 65500)


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute every PNG chunk CRC (so that mutations get past the CRC check into the parsers)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return data
    b = bytearray(data)
    pos = 8
    for _ in range(10000):
        if pos + 8 > len(b):
            break
        (length,) = struct.unpack(">I", b[pos : pos + 4])
        end = pos + 8 + length
        if end + 4 > len(b):
            break
        b[end : end + 4] = struct.pack(">I", zlib.crc32(bytes(b[pos + 4 : end])) & 0xFFFFFFFF)
        pos = end + 4
    return bytes(b)


def mutate(data: bytes, rnd: random.Random, pool: list[bytes], max_len: int = 1 << 20) -> bytes:
    """One to four random edits: bit flips, interesting bytes/ints, insert/delete/duplicate ranges,
    truncation, splicing with another seed; PNG CRCs are repaired half of the time."""
    b = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        n = len(b)
        op = rnd.randrange(9)
        if n == 0:
            b += bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 16)))
            continue
        i = rnd.randrange(n)
        if op == 0:
            b[i] ^= 1 << rnd.randrange(8)
        elif op == 1:
            b[i] = rnd.choice(_INTERESTING8)
        elif op == 2 and n >= 4:
            i = min(i, n - 4)
            b[i : i + 4] = struct.pack(rnd.choice("<>") + "I", rnd.choice(_INTERESTING32))
        elif op == 3 and n >= 2:
            i = min(i, n - 2)
            b[i : i + 2] = struct.pack(rnd.choice("<>") + "H", rnd.choice((0, 1, 0xFFFF, 0x8000, n & 0xFFFF)))
        elif op == 4:
            b[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 64)))
        elif op == 5:
            del b[i : i + rnd.randint(1, max(1, n // 8))]
        elif op == 6:
            j = min(n, i + rnd.randint(1, 256))
            b[i:i] = b[i:j] * rnd.randint(1, 8)
        elif op == 7:
            del b[rnd.randint(1, n) :]
        else:
            other = rnd.choice(pool)
            if other:
                k = rnd.randrange(len(other))
                b[i:] = other[k : k + rnd.randint(1, 4096)] + b[i:]
    if rnd.random() < 0.5:
        b = bytearray(fix_png_crcs(bytes(b)))
    return bytes(b[:max_len])


class _Hang(BaseException):
    pass


def run_one(target: Callable[[bytes], None], data: bytes, timeout: float = PER_INPUT_TIMEOUT) -> str | None:
    """Run the target on one input; the traceback text when it raised or hung, else ``None``."""

    def alarm(signum, frame):  # noqa: ARG001
        raise _Hang()

    use_alarm = timeout > 0 and hasattr(signal, "setitimer")
    if use_alarm:
        old = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        target(data)
        return None
    except _Hang:
        return f"hang: still running after {timeout:g} s\n" + "".join(traceback.format_stack(limit=12))
    except Exception:  # noqa: BLE001 - every escaped exception is a finding
        return traceback.format_exc()
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)


def fuzz(target_name: str, *, seconds: float | None = 10.0, iterations: int | None = None, seed: int = 0,
         findings_dir: str | Path | None = None, seed_corpus: list[bytes] | None = None) -> dict:
    """The mutation driver: run the seeds, then mutated inputs until the time or the iteration budget
    (whichever comes first; ``None`` = no bound) ends. With a fixed ``seed`` the sequence of inputs
    is the same on every machine; a time bound only cuts it shorter on a slow one.

    Returns ``{"runs": n, "findings": [(sha1, first line of the error), ...], "seconds": s}``.
    """
    target = TARGETS[target_name]
    rnd = random.Random(seed)
    pool = list(seed_corpus if seed_corpus is not None else seeds(c2pa_signed=target_name == "c2pa"))
    found: dict[str, str] = {}
    out_dir = Path(findings_dir) if findings_dir else None
    t0 = time.perf_counter()
    runs = 0

    def record(data: bytes, err: str) -> None:
        key = hashlib.sha1(data).hexdigest()[:16]
        last = err.strip().splitlines()[-1] if err.strip() else "?"
        sig = last[:160]
        if sig in found.values():
            return
        found[key] = sig
        if out_dir:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / f"{target_name}-{key}.bin").write_bytes(data)
            (out_dir / f"{target_name}-{key}.txt").write_text(err)

    inputs = iter(pool)
    while True:
        if iterations is not None and runs >= iterations:
            break
        if seconds is not None and time.perf_counter() - t0 > seconds:
            break
        data = next(inputs, None)
        if data is None:
            data = mutate(rnd.choice(pool), rnd, pool)
        err = run_one(target, data)
        runs += 1
        if err:
            record(data, err)
        elif len(pool) < 400 and rnd.random() < 0.02:
            pool.append(data)  # keep a few mutants as new parents (no coverage feedback here)
    return {"runs": runs, "findings": sorted(found.items()), "seconds": round(time.perf_counter() - t0, 2)}


# ------------------------------------------------------------------------------------ atheris


def run_atheris(target_name: str, libfuzzer_args: list[str], corpus_dir: Path) -> None:
    import atheris

    with atheris.instrument_imports():  # before anything imports Pillow, so that its plugins are instrumented
        import PIL.GifImagePlugin  # noqa: F401
        import PIL.JpegImagePlugin  # noqa: F401
        import PIL.PngImagePlugin  # noqa: F401
        import PIL.TiffImagePlugin  # noqa: F401
        import PIL.WebPImagePlugin  # noqa: F401

        import verity.core.io  # noqa: F401
        import verity.provenance.metadata  # noqa: F401
    corpus_dir.mkdir(parents=True, exist_ok=True)
    for k, s in enumerate(seeds(c2pa_signed=target_name == "c2pa")):
        (corpus_dir / f"seed-{k:02d}").write_bytes(s)
    if not any(a.startswith("-max_len") for a in libfuzzer_args):
        libfuzzer_args = ["-max_len=65536", *libfuzzer_args]
    target = TARGETS[target_name]

    def one(data: bytes) -> None:
        target(data)  # an escaped exception is reported by atheris as a crash, with the input saved

    atheris.Setup([sys.argv[0], *libfuzzer_args, str(corpus_dir)], one)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        k = argv.index("--")
        argv, extra = argv[:k], argv[k + 1 :]
    ap = argparse.ArgumentParser(description="verity fuzz harness (see the module docstring)")
    ap.add_argument("target", choices=sorted(TARGETS))
    ap.add_argument("--atheris", action="store_true", help="coverage-guided with atheris (args after --)")
    ap.add_argument("--corpus", default="out/fuzz/corpus", help="atheris working corpus folder")
    ap.add_argument("--seconds", type=float, default=30.0, help="time budget (0 = none; then --iterations)")
    ap.add_argument("--iterations", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--findings", default="out/fuzz/findings")
    args = ap.parse_args(argv)
    if args.atheris:
        run_atheris(args.target, extra, Path(args.corpus) / args.target)
        return 0
    r = fuzz(args.target, seconds=args.seconds or None, iterations=args.iterations, seed=args.seed,
             findings_dir=args.findings)
    print(f"{args.target}: {r['runs']} runs in {r['seconds']} s, {len(r['findings'])} finding(s)")
    for key, sig in r["findings"]:
        print(f"  {key}: {sig}")
    return 1 if r["findings"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
