"""Reading what a file says about its own origin: text chunks, EXIF strings, XMP, IPTC, thumbnails.

Everything here is bounded and never raises on bad input: every reader caps how many bytes it
looks at (:data:`MAX_VALUE_CHARS` per text value, :data:`XMP_SCAN_BYTES` for a raw XMP search,
:data:`MAX_CHUNKS` PNG chunks) and returns an empty result when the data is broken. XMP is read
with regular expressions, not an XML parser, so a packet that is not XML still yields whatever
fields can be recognised.

The functions take plain bytes/str/dicts (or a :class:`~verity.core.types.Sample` where noted) so
they can be tested without images.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: Longest text value (characters) that is scanned or parsed; longer ones are truncated.
MAX_VALUE_CHARS = 256 * 1024
#: Largest JSON text that is parsed (bigger blocks are only scanned with regular expressions).
MAX_JSON_CHARS = 4 * 1024 * 1024
#: Bytes searched at the start and at the end of a file for an XMP packet.
XMP_SCAN_BYTES = 2 * 1024 * 1024
#: Longest XMP packet kept.
MAX_XMP_BYTES = 1024 * 1024
#: PNG chunks walked at most.
MAX_CHUNKS = 200_000
#: Most text chunks read from one PNG: a file with 100,000 text chunks is hostile, and reading them
#: all cost each metadata detector seconds (found by the hostile corpus, tests/hardening).
MAX_TEXT_ENTRIES = 1000

# --------------------------------------------------------------------------------------------
# Generic text entries
# --------------------------------------------------------------------------------------------


@dataclass
class TextEntry:
    """One piece of text metadata.

    Attributes
    ----------
    source : str
        Where it was found, in words: ``"PNG text chunk"``, ``"JPEG comment"``, ``"EXIF"``,
        ``"IPTC"``, ``"XMP"``...
    key : str
        The chunk keyword, tag name or field name.
    value : str
        The text (truncated to :data:`MAX_VALUE_CHARS`).
    truncated : bool
        True when the stored value was longer.
    size : int
        Length of the stored value in characters (before truncation).
    """

    source: str
    key: str
    value: str
    truncated: bool = False
    size: int = 0

    @property
    def where(self) -> str:
        """``PNG text chunk 'parameters'``."""
        return f"{self.source} '{self.key}'"


def _clip(text: str) -> tuple[str, bool]:
    return (text[:MAX_VALUE_CHARS], True) if len(text) > MAX_VALUE_CHARS else (text, False)


def _entry(source: str, key: str, value: Any) -> TextEntry | None:
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value[: MAX_VALUE_CHARS * 2]).decode("utf-8", "replace")
        size = len(value)
    elif isinstance(value, str):
        size = len(value)
    else:
        return None
    text, cut = _clip(value)
    text = text.replace("\x00", " ").strip()
    if not text:
        return None
    return TextEntry(source, str(key), text, cut, size)


def png_text_chunks(data: bytes, max_value: int = MAX_VALUE_CHARS) -> list[TextEntry]:
    """Text chunks (tEXt, zTXt, iTXt) of a PNG, read straight from the bytes.

    Pillow drops or refuses oversize chunks; this walker keeps the first ``max_value`` characters
    of each and decompresses zTXt/iTXt with a bounded output size, so a 100 MB text chunk costs
    no more than a small one.

    Parameters
    ----------
    data : bytes
        The whole PNG file.
    max_value : int
        Characters kept per value.

    Returns
    -------
    list of TextEntry
        In file order, at most :data:`MAX_TEXT_ENTRIES`; empty for a non-PNG or when the first
        chunk is broken.
    """
    out: list[TextEntry] = []
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return out
    pos, n = 8, len(data)
    for _ in range(MAX_CHUNKS):
        if pos + 8 > n:
            break
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        start, end = pos + 8, pos + 8 + length
        if ctype in (b"tEXt", b"zTXt", b"iTXt"):
            body = data[start : min(end, n)]
            key = body[: body.find(b"\x00", 0, 80)].decode("latin-1", "replace").lower()
            cap = max(max_value, MAX_JSON_CHARS) if key in GENERATOR_KEYS else max_value
            entry = _png_text_body(ctype, body, length, cap)
            if entry is not None:
                out.append(entry)
                if len(out) >= MAX_TEXT_ENTRIES:
                    break
        if ctype == b"IEND":
            break
        pos = end + 4  # CRC
    return out


#: PNG text keywords generators write JSON or settings under: read up to MAX_JSON_CHARS of them.
GENERATOR_KEYS = {"parameters", "prompt", "workflow", "sd-metadata", "invokeai_metadata", "invokeai_graph", "comment", "dream"}


def _inflate(raw: bytes, max_out: int) -> tuple[bytes, bool]:
    """Decompress at most ``max_out`` bytes; (data, truncated)."""
    try:
        d = zlib.decompressobj()
        out = d.decompress(raw, max_out)
        return out, bool(d.unconsumed_tail)
    except zlib.error:
        return b"", False


def _png_text_body(ctype: bytes, body: bytes, length: int, max_value: int) -> TextEntry | None:
    nul = body.find(b"\x00", 0, 80)
    if nul <= 0:
        return None
    key = body[:nul].decode("latin-1", "replace")
    rest = body[nul + 1 :]
    cut = length > len(body)
    if ctype == b"tEXt":
        raw, enc = rest[: max_value * 2], "latin-1"
        cut = cut or len(rest) > max_value * 2
    elif ctype == b"zTXt":
        raw, more = _inflate(rest[1:], max_value * 2)
        enc, cut = "latin-1", cut or more
    else:  # iTXt: flag, method, language\0, translated keyword\0, text
        if len(rest) < 2:
            return None
        flag = rest[0]
        p1 = rest.find(b"\x00", 2)
        p2 = rest.find(b"\x00", p1 + 1) if p1 >= 0 else -1
        if p2 < 0:
            return None
        text = rest[p2 + 1 :]
        if flag:
            raw, more = _inflate(text, max_value * 4)
            cut = cut or more
        else:
            raw = text[: max_value * 4]
            cut = cut or len(text) > max_value * 4
        enc = "utf-8"
    value = raw.decode(enc, "replace")
    size = len(value)
    c2 = size > max_value
    value = value[:max_value]
    value = value.replace("\x00", " ").strip()
    if not value:
        return None
    return TextEntry("PNG text chunk", key, value, cut or c2, size)


#: Sample.info keys that hold binary or numeric container data, not text.
_NON_TEXT_INFO = {
    "exif", "icc_profile", "xmp", "XML:com.adobe.xmp", "photoshop", "adobe", "adobe_transform",
    "compression", "dpi", "jfif", "jfif_version", "jfif_unit", "jfif_density", "progressive",
    "progression", "_dropped", "_xmp_parsed", "mp", "mpoffset", "flashpix", "loop", "duration",
    "background", "transparency", "gamma", "chromaticity", "srgb", "aspect", "version",
    "extension", "interlace", "icc", "resolution", "unit", "dpi", "mode",
}  # fmt: skip

#: EXIF tags that hold free text, by id.
EXIF_TEXT_TAGS = {
    0x000B: "ProcessingSoftware",
    0x010E: "ImageDescription",
    0x010F: "Make",
    0x0110: "Model",
    0x0131: "Software",
    0x013B: "Artist",
    0x013C: "HostComputer",
    0x8298: "Copyright",
    0x9286: "UserComment",
    0x9C9B: "XPTitle",
    0x9C9C: "XPComment",
    0x9C9D: "XPAuthor",
    0x9C9E: "XPKeywords",
    0x9C9F: "XPSubject",
    0xA430: "CameraOwnerName",
    0xA433: "LensMake",
    0xA434: "LensModel",
}

#: EXIF tags that name software.
EXIF_SOFTWARE_TAGS = ("Software", "ProcessingSoftware", "HostComputer")


def decode_user_comment(value: Any) -> str:
    """Decode an EXIF UserComment (8-byte character-code prefix, then the text)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, (bytes, bytearray)):
        return ""
    b = bytes(value[: MAX_VALUE_CHARS * 2 + 8])
    head, body = b[:8], b[8:]
    if head.startswith(b"UNICODE"):
        # UTF-16 with unspecified byte order: pick the order that yields more ASCII characters
        best = ""
        for enc in ("utf-16-be", "utf-16-le"):
            s = body[: len(body) // 2 * 2].decode(enc, "replace")
            if sum(c.isascii() for c in s) > sum(c.isascii() for c in best):
                best = s
        return best
    if head.startswith(b"ASCII") or head == b"\x00" * 8 or head.startswith(b"JIS"):
        return body.decode("utf-8" if not head.startswith(b"JIS") else "shift_jis", "replace")
    return b.decode("utf-8", "replace")


def _xp_string(value: Any) -> str:
    """Windows XP* tags: UTF-16LE bytes (Pillow gives bytes or a tuple of ints)."""
    if isinstance(value, tuple):
        try:
            value = bytes(value)
        except (TypeError, ValueError):
            return ""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value[: MAX_VALUE_CHARS * 2]).decode("utf-16-le", "replace")
    return value if isinstance(value, str) else ""


def exif_text_entries(tags: dict[int, Any]) -> list[TextEntry]:
    """Text-valued EXIF tags as :class:`TextEntry` (source ``"EXIF"``)."""
    out = []
    for tag, name in EXIF_TEXT_TAGS.items():
        if tag not in tags:
            continue
        v = tags[tag]
        if tag == 0x9286:
            v = decode_user_comment(v)
        elif 0x9C9B <= tag <= 0x9C9F:
            v = _xp_string(v)
        e = _entry("EXIF", name, v)
        if e is not None:
            out.append(e)
    return out


def parse_iim(data: bytes, max_records: int = 10_000) -> dict[str, list[str]]:
    """Parse IPTC-IIM datasets (as stored in a Photoshop 0x0404 resource).

    Parameters
    ----------
    data : bytes
        The IIM stream: records of ``0x1C, record, dataset, size (2 bytes), value``.
    max_records : int
        Stop after this many datasets.

    Returns
    -------
    dict of str to list of str
        ``"2:120"`` (record:dataset) to the decoded values; only record 2 (application).
    """
    out: dict[str, list[str]] = {}
    pos, n = 0, len(data)
    for _ in range(max_records):
        if pos + 5 > n or data[pos] != 0x1C:
            break
        rec, ds = data[pos + 1], data[pos + 2]
        size = struct.unpack(">H", data[pos + 3 : pos + 5])[0]
        pos += 5
        if size & 0x8000:  # extended length: the next (size & 0x7fff) bytes hold the length
            k = size & 0x7FFF
            if k > 4 or pos + k > n:
                break
            size = int.from_bytes(data[pos : pos + k], "big")
            pos += k
        val = data[pos : pos + size]
        pos += size
        if rec == 2 and ds != 0:
            out.setdefault(f"2:{ds}", []).append(val[:MAX_VALUE_CHARS].decode("utf-8", "replace"))
    return out


#: IIM datasets worth reading, with their IPTC names.
IIM_FIELDS = {
    "2:5": "ObjectName",
    "2:25": "Keywords",
    "2:40": "SpecialInstructions",
    "2:65": "OriginatingProgram",
    "2:70": "ProgramVersion",
    "2:80": "By-line",
    "2:105": "Headline",
    "2:110": "Credit",
    "2:115": "Source",
    "2:116": "CopyrightNotice",
    "2:120": "Caption-Abstract",
}


def iptc_entries(info: dict[str, Any]) -> list[TextEntry]:
    """IPTC-IIM text from a JPEG's Photoshop APP13 block (``info['photoshop'][0x0404]``)."""
    ps = info.get("photoshop")
    if not isinstance(ps, dict):
        return []
    raw = ps.get(0x0404)
    if not isinstance(raw, (bytes, bytearray)):
        return []
    try:
        recs = parse_iim(bytes(raw))
    except Exception:  # noqa: BLE001 - broken IIM is just absent
        return []
    out = []
    for k, name in IIM_FIELDS.items():
        for v in recs.get(k, []):
            e = _entry("IPTC", name, v)
            if e is not None:
                out.append(e)
    return out


def info_text_entries(info: dict[str, Any], fmt: str) -> list[TextEntry]:
    """Text values of a Pillow ``info`` dict (JPEG/GIF comments, WebP/TIFF text fields)."""
    out = []
    for k, v in info.items():
        if k in _NON_TEXT_INFO or k.startswith("_"):
            continue
        if k == "comment":
            src = {"JPEG": "JPEG comment", "GIF": "GIF comment"}.get(fmt, f"{fmt} comment")
            e = _entry(src, "COM" if fmt == "JPEG" else "comment", v)
        elif isinstance(v, str):
            src = "PNG text chunk" if fmt == "PNG" else f"{fmt} text field"
            e = _entry(src, k, v)
        else:
            e = None
        if e is not None:
            out.append(e)
    return out


def sample_text_entries(sample: Any) -> list[TextEntry]:
    """Every text value a sample carries outside XMP: text chunks, comments, EXIF text, IPTC.

    PNG text chunks are read from the raw bytes (:func:`png_text_chunks`), so chunks that
    Pillow dropped for size are still seen; other formats use ``sample.info``.
    """
    entries: list[TextEntry] = []
    try:
        if sample.format == "PNG":
            entries += png_text_chunks(sample.data)
            entries += [e for e in info_text_entries(sample.info, "PNG") if e.source != "PNG text chunk"]
        else:
            entries += info_text_entries(sample.info, sample.format)
    except Exception:  # noqa: BLE001
        pass
    try:
        entries += exif_text_entries(sample.exif)
    except Exception:  # noqa: BLE001
        pass
    try:
        entries += iptc_entries(sample.info)
    except Exception:  # noqa: BLE001
        pass
    return entries


# --------------------------------------------------------------------------------------------
# Generator parameter blocks
# --------------------------------------------------------------------------------------------


@dataclass
class GeneratorHit:
    """Evidence that a generator wrote the file.

    Attributes
    ----------
    generator : str
        Human name (``"Stable Diffusion (AUTOMATIC1111 web UI)"``, ``"ComfyUI"``, ``"Midjourney"``...).
    kind : str
        ``"parameters"`` (a structured block of generation settings), ``"software"`` (a generator
        named in a software field) or ``"mention"`` (a generator named in free text).
    where : str
        ``"PNG text chunk 'parameters'"``.
    summary : str
        The settings in a few words: ``"Steps 20, Sampler Euler a, seed 1234"``.
    prompt : str or None
        The start of the prompt, when there is one.
    params : dict
        Parsed values (JSON-safe).
    """

    generator: str
    kind: str
    where: str
    summary: str = ""
    prompt: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def sentence(self) -> str:
        if self.kind == "parameters":
            what = f"holds a {self.generator} prompt" if self.prompt else f"holds {self.generator} generation settings"
            s = f"{self.where} {what}"
            if self.summary:
                s += f" ({self.summary})"
            if self.prompt:
                s += f': "{_short(self.prompt, 80)}"'
            return s + "."
        if self.kind == "software":
            return f"{self.where} names the image generator {self.generator} ({_short(self.summary, 80)!r})."
        return f"{self.where} mentions the image generator {self.generator} ({_short(self.summary, 80)!r})."


def _short(s: str, n: int) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 3].rstrip() + "..."


_A1111_STEPS = re.compile(r"(?:^|[\n,]\s*)Steps:\s*(\d{1,5})\s*,", re.M)
_A1111_KV = re.compile(r'\s*([A-Za-z][\w \-/.()]{0,40}?):\s*("(?:[^"\\]|\\.){0,2000}"|[^,\n]{0,500})(?:,|$)')


def parse_a1111(text: str) -> dict[str, Any] | None:
    """Parse an AUTOMATIC1111 / Forge / SD.Next ``parameters`` block.

    The format is ``<prompt>\\nNegative prompt: <text>\\nSteps: 20, Sampler: Euler a, CFG scale:
    7, Seed: 1234, Size: 512x512, Model hash: ..., Model: ...``.

    Returns
    -------
    dict or None
        ``prompt``, ``negative_prompt`` and the key/value pairs of the settings line (keys
        lower-cased with spaces as underscores); ``None`` when there is no ``Steps:`` setting.
    """
    m = _A1111_STEPS.search(text)
    if not m:
        # "Steps: 20" may also end the line
        m = re.search(r"(?:^|[\n,]\s*)Steps:\s*(\d{1,5})\s*$", text, re.M)
        if not m:
            return None
    line_start = text.rfind("\n", 0, m.start() + 1) + 1
    head = text[:line_start].rstrip("\n")
    settings_line = text[line_start:].split("\n", 1)[0]
    out: dict[str, Any] = {}
    neg = head.find("Negative prompt:")
    if neg >= 0:
        out["prompt"] = head[:neg].strip()
        out["negative_prompt"] = head[neg + len("Negative prompt:") :].strip()
    else:
        out["prompt"] = head.strip()
    for km in _A1111_KV.finditer(settings_line):
        k = km.group(1).strip().lower().replace(" ", "_")
        v = km.group(2).strip().strip('"')
        if k and k not in out:
            out[k] = v
    if "steps" not in out:
        out["steps"] = m.group(1)
    # a real block has more than the step count
    if not ({"sampler", "seed", "cfg_scale", "model", "size", "schedule_type"} & out.keys()):
        return None
    return out


_DREAM_FLAG = re.compile(r"\s-([sSWHCAf])\s*([^\s\"]+)")


def parse_dream(text: str) -> dict[str, Any] | None:
    """Parse an early InvokeAI (lstein/stable-diffusion) ``Dream`` chunk:
    ``"prompt" -s 50 -S 42 -W 512 -H 512 -C 7.5 -A k_lms``."""
    t = text.strip()
    m = re.match(r'"((?:[^"\\]|\\.){0,4000})"', t)
    if not m:
        return None
    flags = {k: v for k, v in _DREAM_FLAG.findall(t[m.end() :])}
    if not ({"s", "S", "A", "C"} & flags.keys()):
        return None
    names = {"s": "steps", "S": "seed", "W": "width", "H": "height", "C": "cfg_scale", "A": "sampler", "f": "strength"}
    out: dict[str, Any] = {"prompt": m.group(1)}
    out.update({names[k]: v for k, v in flags.items()})
    return out


def _json(text: str) -> Any:
    t = text.strip()
    if not t or t[0] not in "{[" or len(t) > MAX_JSON_CHARS:
        return None
    try:
        return json.loads(t)
    except (ValueError, RecursionError):
        return None


def _comfy_summary(graph: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Settings of the first sampler node and the first text prompt of a ComfyUI API graph."""
    params: dict[str, Any] = {"nodes": len(graph)}
    prompt = None
    for node in list(graph.values())[:5000]:
        if not isinstance(node, dict):
            continue
        ct = str(node.get("class_type", ""))
        inp = node.get("inputs") if isinstance(node.get("inputs"), dict) else {}
        if "Sampler" in ct and "steps" not in params:
            for k in ("seed", "noise_seed", "steps", "cfg", "sampler_name", "scheduler", "denoise"):
                v = inp.get(k)
                if isinstance(v, (int, float, str)):
                    params[k] = v
        if "Checkpoint" in ct and "ckpt_name" in inp and isinstance(inp["ckpt_name"], str):
            params.setdefault("model", inp["ckpt_name"])
        if ct.startswith("CLIPTextEncode") and prompt is None:
            txt = inp.get("text") or inp.get("text_g")
            if isinstance(txt, str) and txt.strip():
                prompt = txt
    return params, prompt


def _fmt_params(p: dict[str, Any], keys: list[tuple[str, str]]) -> str:
    parts = []
    for k, label in keys:
        v = p.get(k)
        if v is None or v == "" or isinstance(v, (dict, list)):
            continue
        parts.append(f"{label} {v}")
    return ", ".join(parts)


_SD_KEYS = [
    ("steps", "Steps"), ("sampler", "Sampler"), ("sampler_name", "Sampler"), ("cfg_scale", "CFG scale"),
    ("cfg", "CFG"), ("seed", "seed"), ("noise_seed", "seed"), ("size", "size"), ("model", "model"),
]  # fmt: skip


def parse_generator_entry(entry: TextEntry) -> GeneratorHit | None:
    """Recognise a structured block of generation settings in one text value.

    Recognised: AUTOMATIC1111-style ``parameters`` (also inside EXIF UserComment of JPEG/WebP),
    ComfyUI ``prompt`` (API graph) and ``workflow`` (UI graph), InvokeAI ``Dream``,
    ``sd-metadata``, ``invokeai_metadata``, NovelAI (``Software``/``Source``/``Comment``),
    Midjourney ``Description`` lines (``Job ID`` and ``--v``/``--ar`` flags) and any JSON with
    ``steps`` plus ``sampler``/``seed``/``cfg_scale``.

    Returns
    -------
    GeneratorHit or None
    """
    key, text = entry.key, entry.value
    lk = key.lower()
    a = parse_a1111(text)
    if a is not None:
        gen = "Stable Diffusion"
        low = text.lower()
        a["ui"] = "ComfyUI" if "comfyui" in low else ("Forge" if "version: f" in low else "AUTOMATIC1111-style web UI")
        return GeneratorHit(gen, "parameters", entry.where, _fmt_params(a, _SD_KEYS), a.get("prompt") or None, a)
    if lk == "dream":
        d = parse_dream(text)
        if d is not None:
            return GeneratorHit("Stable Diffusion (InvokeAI)", "parameters", entry.where, _fmt_params(d, _SD_KEYS), d.get("prompt"), d)
    obj = _json(text) if ("{" in text[:4] or "[" in text[:4]) else None
    if isinstance(obj, dict):
        # ComfyUI API graph: {"3": {"class_type": "KSampler", "inputs": {...}}, ...}
        if obj and all(isinstance(v, dict) and "class_type" in v for v in list(obj.values())[:50]):
            p, prompt = _comfy_summary(obj)
            return GeneratorHit("ComfyUI", "parameters", entry.where,
                                _fmt_params(p, _SD_KEYS) + f"{', ' if len(p) > 1 else ''}{p['nodes']} nodes", prompt, p)
        # ComfyUI UI workflow: {"nodes": [{"type": "KSampler", ...}], "links": [...]}
        nodes = obj.get("nodes")
        if isinstance(nodes, list) and nodes and all(isinstance(n, dict) and "type" in n for n in nodes[:50]):
            types = sorted({str(n.get("type")) for n in nodes[:5000]})
            if any("Sampler" in t or "CLIPTextEncode" in t or "Checkpoint" in t for t in types):
                return GeneratorHit("ComfyUI", "parameters", entry.where, f"workflow of {len(nodes)} nodes", None,
                                    {"nodes": len(nodes)})
        # InvokeAI sd-metadata: {"model": ..., "app_id": ..., "image": {"seed": .., "steps": ..}}
        img = obj.get("image") if isinstance(obj.get("image"), dict) else None
        if img is not None and ("app_id" in obj or "model_id" in obj or lk == "sd-metadata"):
            p = {k: img.get(k) for k in ("steps", "sampler", "cfg_scale", "seed", "type") if k in img}
            if obj.get("model_id") or obj.get("model_weights"):
                p["model"] = obj.get("model_id") or obj.get("model_weights")
            prompt = img.get("prompt")
            if isinstance(prompt, list) and prompt and isinstance(prompt[0], dict):
                prompt = prompt[0].get("prompt")
            app = str(obj.get("app_id") or "InvokeAI")
            return GeneratorHit(f"Stable Diffusion ({app})", "parameters", entry.where, _fmt_params(p, _SD_KEYS),
                                prompt if isinstance(prompt, str) else None, p)
        if lk in ("invokeai_metadata", "invokeai_graph") or ("generation_mode" in obj and "positive_prompt" in obj):
            p = {k: obj.get(k) for k in ("steps", "scheduler", "cfg_scale", "seed", "generation_mode") if k in obj}
            m = obj.get("model")
            if isinstance(m, dict):
                p["model"] = m.get("name") or m.get("model_name")
            pp = obj.get("positive_prompt")
            return GeneratorHit("InvokeAI", "parameters", entry.where, _fmt_params({**p, "sampler": p.get("scheduler")}, _SD_KEYS),
                                pp if isinstance(pp, str) else None, p)
        keys = {str(k).lower() for k in obj}
        if "steps" in keys and ({"sampler", "seed", "cfg_scale", "scale", "sampler_name", "uc", "noise"} & keys):
            low = {str(k).lower(): v for k, v in obj.items()}
            gen = "NovelAI" if ("uc" in keys or "noise_schedule" in keys or lk == "comment") else "an image generator"
            p = {k: low.get(k) for k in ("steps", "sampler", "scale", "cfg_scale", "seed") if k in low}
            pr = low.get("prompt")
            return GeneratorHit(gen, "parameters", entry.where, _fmt_params({**p, "cfg_scale": p.get("cfg_scale") or p.get("scale")}, _SD_KEYS),
                                pr if isinstance(pr, str) else None, p)
    if lk in ("prompt", "workflow") and obj is None and re.search(r'"(?:class_type|type)"\s*:\s*"(?:KSampler\w*|CLIPTextEncode\w*|CheckpointLoader\w*)"', text[:MAX_VALUE_CHARS]):
        why = "too large to parse" if len(text) > MAX_JSON_CHARS or entry.truncated else "not valid JSON"
        return GeneratorHit("ComfyUI", "parameters", entry.where, f"ComfyUI node graph ({why})", None, {})
    if lk in ("description", "comment", "parameters") or entry.source in ("EXIF", "XMP"):
        if re.search(r"Job ID:\s*[0-9a-f]{8}-[0-9a-f]{4}-", text) and re.search(r"--(?:v|ar|s|q|niji|style)\b", text):
            prompt = text.split("Job ID:")[0].strip()
            return GeneratorHit("Midjourney", "parameters", entry.where, "Midjourney job ID and flags", prompt or None, {})
    return None


# --------------------------------------------------------------------------------------------
# Generator names
# --------------------------------------------------------------------------------------------

#: Unambiguous generator names: reported wherever they appear.
GENERATOR_NAMES: list[tuple[str, re.Pattern[str]]] = [
    (name, re.compile(p, re.I))
    for name, p in [
        ("Midjourney", r"\bmid-?journey\b"),
        ("DALL-E", r"\bdall[\s\-\u00b7.]?e(?:\s?[23])?\b"),
        ("Stable Diffusion", r"\bstable[\s\-_]?diffusion\b|\bsdxl\b|\bstability\.?\s?ai\b|\bdreamstudio\b"),
        ("Adobe Firefly", r"\badobe\s+firefly\b"),
        ("Google Imagen", r"\bgoogle\s+imagen\b|\bimagen\s?[1-4]\b"),
        ("FLUX", r"\bflux\.1\b|\bflux[\s\-_.](?:1[\s\-_.])?(?:dev|schnell|pro|kontext)\b|\bblack[\s\-]forest[\s\-]labs\b"),
        ("NovelAI", r"\bnovel\s?ai\b"),
        ("ComfyUI", r"\bcomfy\s?ui\b"),
        ("InvokeAI", r"\binvoke\s?ai\b"),
        ("AUTOMATIC1111 web UI", r"\bautomatic1111\b|stable-diffusion-webui"),
        ("Fooocus", r"\bfooocus\b"),
        ("Leonardo.Ai", r"\bleonardo\.ai\b"),
        ("Ideogram", r"\bideogram(?:\.ai)?\b"),
        ("Craiyon", r"\bcraiyon\b"),
        ("Kandinsky", r"\bkandinsky\s?[2-3]"),
        ("Bing Image Creator", r"\bbing\s+image\s+creator\b"),
        ("OpenAI image model", r"\bgpt-image-1\b|\bgpt-4o\b"),
        ("Meta AI", r"\bimagine\s+with\s+meta\b"),
        ("NightCafe", r"\bnightcafe\b"),
        ("DiffusionBee", r"\bdiffusion\s?bee\b"),
        ("Draw Things", r"\bdraw\s+things\b"),
        ("StyleGAN", r"\bstylegan[23]?\b"),
        ("verity lab generator", r"\bverity-lab\b"),
    ]
]

#: Names that are also ordinary words ("firefly", "imagen" is Spanish for image, "flux"):
#: reported only in software fields (Software, CreatorTool, softwareAgent, claim generator).
SOFTWARE_ONLY_NAMES: list[tuple[str, re.Pattern[str]]] = [
    (name, re.compile(p, re.I))
    for name, p in [
        ("Adobe Firefly", r"\bfirefly\b"),
        ("Google Imagen", r"\bimagen\b"),
        ("FLUX", r"\bflux\b"),
        ("Google Gemini", r"\bgemini\b"),
        ("OpenAI", r"\bopenai\b|\bchatgpt\b|\bsora\b"),
        ("Runway", r"\brunway(?:ml)?\b"),
        ("Stable Diffusion", r"\bsd\s?(?:1\.[45]|2\.[01]|3(?:\.5)?)\b"),
    ]
]


def find_generator_names(text: str, software_field: bool = False) -> list[str]:
    """Generator names in ``text`` (first :data:`MAX_VALUE_CHARS` characters), in list order.

    Parameters
    ----------
    text : str
    software_field : bool
        Also look for the ambiguous names of :data:`SOFTWARE_ONLY_NAMES`.
    """
    t = text[:MAX_VALUE_CHARS]
    found = [n for n, p in GENERATOR_NAMES if p.search(t)]
    if software_field:
        found += [n for n, p in SOFTWARE_ONLY_NAMES if n not in found and p.search(t)]
    return found


# --------------------------------------------------------------------------------------------
# XMP
# --------------------------------------------------------------------------------------------

_XMP_START = (b"<x:xmpmeta", b"<?xpacket begin", b"<x:xapmeta")
_XMP_END = (b"</x:xmpmeta>", b"</x:xapmeta>")


def _decode_xmp(b: bytes | str) -> str:
    if isinstance(b, str):
        return b[:MAX_XMP_BYTES]
    b = bytes(b[:MAX_XMP_BYTES])
    if b[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(b) > 1 and b[1:2] == b"\x00"):
        try:
            return b.decode("utf-16", "replace")
        except Exception:  # noqa: BLE001
            pass
    return b.decode("utf-8", "replace")


def find_xmp_in_bytes(data: bytes, scan: int = XMP_SCAN_BYTES) -> str | None:
    """Search the first and last ``scan`` bytes of a file for an XMP packet.

    Returns
    -------
    str or None
        The packet from its opening ``<x:xmpmeta``/``<?xpacket`` to the closing tag (at most
        :data:`MAX_XMP_BYTES`), or ``None``.
    """
    regions = [(0, min(len(data), scan))]
    if len(data) > scan:
        regions.append((max(scan, len(data) - scan), len(data)))
    for lo, hi in regions:
        starts = [i for i in (data.find(s, lo, hi) for s in _XMP_START) if i >= 0]
        if not starts:
            continue
        i = min(starts)
        limit = min(len(data), i + MAX_XMP_BYTES)
        ends = [j + len(e) for e in _XMP_END for j in [data.find(e, i, limit)] if j >= 0]
        j = min(ends) if ends else limit
        return _decode_xmp(data[i:j])
    return None


#: The last sample's XMP lookup, keyed by the identity of its bytes (three detectors ask for it).
_XMP_CACHE: list[tuple[Any, Any]] = [(None, None)]


def sample_xmp(sample: Any) -> tuple[str | None, str]:
    """The XMP packet of a sample and where it came from (cached for the last sample seen);
    see :func:`_sample_xmp`."""
    data = getattr(sample, "data", None)
    cached_data, cached = _XMP_CACHE[0]  # one tuple, swapped atomically: safe across threads
    if data is not None and cached_data is data:
        return cached
    result = _sample_xmp(sample)
    _XMP_CACHE[0] = (data, result)
    return result


def _sample_xmp(sample: Any) -> tuple[str | None, str]:
    """The XMP packet of a sample and where it came from.

    Looks in ``sample.info`` (``xmp`` for JPEG/WebP/TIFF, ``XML:com.adobe.xmp`` for PNG), then in
    the PNG text chunks, then searches the raw bytes (:func:`find_xmp_in_bytes`).

    Returns
    -------
    (str or None, str)
        The packet text and a description of its location (``"XMP packet"``, ``"XMP (raw bytes)"``).
    """
    info = getattr(sample, "info", {}) or {}
    for k in ("xmp", "XML:com.adobe.xmp"):
        v = info.get(k)
        if isinstance(v, (bytes, bytearray, str)) and len(v):
            return _decode_xmp(v), "XMP packet"
    if getattr(sample, "format", "") == "PNG":
        for e in png_text_chunks(sample.data, max_value=MAX_XMP_BYTES):
            if e.key == "XML:com.adobe.xmp":
                return e.value, "XMP packet"
    try:
        x = find_xmp_in_bytes(sample.data)
    except Exception:  # noqa: BLE001
        x = None
    return (x, "XMP packet (found in the raw bytes)") if x else (None, "")


@dataclass
class XmpInfo:
    """Fields read from an XMP packet (all optional).

    Attributes
    ----------
    digital_source_types : list of str
        IPTC DigitalSourceType terms (the last path element of the newscode URI, e.g.
        ``trainedAlgorithmicMedia``), in packet order, without duplicates.
    creator_tool : str or None
        ``xmp:CreatorTool``.
    software_agents : list of str
        ``stEvt:softwareAgent`` of the xmpMM:History events.
    history_actions : list of str
        ``stEvt:action`` of the history events (``created``, ``saved``, ``converted``...).
    photoshop_history : str or None
        ``photoshop:History`` text.
    document_ancestors : int
        Entries of ``photoshop:DocumentAncestors``: documents Photoshop pasted or placed into this one.
    texts : list of (str, str)
        Descriptive fields (name, value): dc:description, dc:title, dc:subject/rdf:li,
        photoshop:Credit, Iptc4xmpExt:AOTitle, exif:UserComment, tiff:ImageDescription.
    create_date, modify_date, metadata_date, date_original : str or None
    is_xml_like : bool
        Whether the packet looks like XML at all.
    """

    digital_source_types: list[str] = field(default_factory=list)
    creator_tool: str | None = None
    software_agents: list[str] = field(default_factory=list)
    history_actions: list[str] = field(default_factory=list)
    photoshop_history: str | None = None
    document_ancestors: int = 0
    texts: list[tuple[str, str]] = field(default_factory=list)
    create_date: str | None = None
    modify_date: str | None = None
    metadata_date: str | None = None
    date_original: str | None = None
    is_xml_like: bool = False


def _xmp_values(x: str, qname: str, limit: int = 200) -> list[str]:
    """Values of ``qname`` as an attribute (``qname="v"``) or a simple element (``<qname>v<``);
    element values wrapped in rdf:Alt/Seq/Bag are returned per rdf:li."""
    out: list[str] = []
    q = re.escape(qname)
    for m in re.finditer(q + r'\s*=\s*"([^"]{0,4000})"', x):
        out.append(m.group(1))
        if len(out) >= limit:
            return out
    for m in re.finditer("<" + q + r"(?:\s[^>]{0,400})?>([^<]{0,4000})<", x):
        if m.group(1).strip():
            out.append(m.group(1))
    for m in re.finditer("<" + q + r"(?:\s[^>]{0,400})?>\s*<rdf:(?:Alt|Seq|Bag)>(.{0,20000}?)</rdf:(?:Alt|Seq|Bag)>", x, re.S):
        out += re.findall(r"<rdf:li(?:\s[^>]{0,200})?>([^<]{0,4000})</rdf:li>", m.group(1))
    for m in re.finditer("<" + q + r'\s[^>]{0,400}?rdf:resource\s*=\s*"([^"]{0,4000})"', x):
        out.append(m.group(1))
    return [_unescape(v).strip() for v in out[:limit] if v.strip()]


def _unescape(s: str) -> str:
    return (
        s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&apos;", "'").replace("&amp;", "&")
    )


_DST_URI = re.compile(r"digitalsourcetype/([A-Za-z]{3,60})")


def parse_xmp(xmp: str) -> XmpInfo:
    """Read the provenance-relevant fields of an XMP packet with regular expressions.

    Never raises; a packet that is not XML gives whatever fields can still be recognised.
    """
    info = XmpInfo()
    if not isinstance(xmp, str) or not xmp:
        return info
    x = xmp[:MAX_XMP_BYTES]
    info.is_xml_like = "<" in x and ("rdf:" in x or "xmpmeta" in x)
    try:
        dst: list[str] = []
        for v in _xmp_values(x, "Iptc4xmpExt:DigitalSourceType"):
            m = _DST_URI.search(v)
            term = m.group(1) if m else v.rsplit("/", 1)[-1]
            if re.fullmatch(r"[A-Za-z]{3,60}", term):
                dst.append(term)
        for m in _DST_URI.finditer(x):  # under another prefix, or in a struct
            dst.append(m.group(1))
        info.digital_source_types = list(dict.fromkeys(dst))
        ct = _xmp_values(x, "xmp:CreatorTool") or _xmp_values(x, "xap:CreatorTool")
        info.creator_tool = ct[0] if ct else None
        info.software_agents = list(dict.fromkeys(_xmp_values(x, "stEvt:softwareAgent")))
        info.history_actions = _xmp_values(x, "stEvt:action")
        ph = _xmp_values(x, "photoshop:History")
        info.photoshop_history = ph[0] if ph else None
        info.document_ancestors = len(_xmp_values(x, "photoshop:DocumentAncestors", limit=10_000))
        for q in ("dc:description", "dc:title", "dc:subject", "photoshop:Credit", "photoshop:Source",
                  "Iptc4xmpExt:AOTitle", "exif:UserComment", "tiff:ImageDescription", "dc:creator",
                  "xmpRights:UsageTerms", "plus:ImageSupplierName"):
            for v in _xmp_values(x, q, limit=20):
                info.texts.append((q, v))
        for attr, q in (("create_date", "xmp:CreateDate"), ("modify_date", "xmp:ModifyDate"),
                        ("metadata_date", "xmp:MetadataDate"), ("date_original", "exif:DateTimeOriginal")):
            v = _xmp_values(x, q, limit=1)
            setattr(info, attr, v[0] if v else None)
    except Exception:  # noqa: BLE001 - regexes on odd input must not break the detector
        pass
    return info


#: IPTC DigitalSourceType vocabulary: term -> (plain meaning).
DIGITAL_SOURCE_TYPES: dict[str, str] = {
    "digitalCapture": "captured by a digital camera or scanner",
    "computationalCapture": "captured by a camera with computational processing (e.g. multi-frame phone photo)",
    "negativeFilm": "scanned from a film negative",
    "positiveFilm": "scanned from a film positive (slide)",
    "print": "scanned from a print",
    "humanEdits": "edited by a person",
    "minorHumanEdits": "minor edits by a person (crop, colour, exposure)",
    "algorithmicallyEnhanced": "enhanced by an algorithm (e.g. denoise, upscale) without changing content",
    "digitalCreation": "created by a person with software (digital art)",
    "digitalArt": "created by a person with software (digital art)",
    "softwareImage": "created by software",
    "dataDrivenMedia": "generated from data (a visualisation or model output)",
    "trainedAlgorithmicMedia": "created by a trained generative model (generative AI)",
    "algorithmicMedia": "created purely by an algorithm",
    "screenCapture": "a screen capture",
    "virtualRecording": "recorded in a virtual environment",
    "composite": "a composite of several sources",
    "compositeCapture": "a composite of several captures (e.g. HDR, panorama)",
    "compositeSynthetic": "a composite that includes synthetic elements",
    "compositeWithTrainedAlgorithmicMedia": "a composite that includes generative-AI content (e.g. generative fill)",
}


# --------------------------------------------------------------------------------------------
# EXIF: timestamps and the embedded thumbnail
# --------------------------------------------------------------------------------------------


def parse_exif_datetime(value: Any) -> datetime | None:
    """Parse ``"YYYY:MM:DD HH:MM:SS"`` (also with ``-``/``T`` separators); ``None`` when invalid."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    s = value.strip().strip("\x00").strip()
    m = re.match(r"(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})", s)
    if not m:
        return None
    try:
        return datetime(*(int(g) for g in m.groups()))
    except ValueError:
        return None


def _ifd_entries(tiff: bytes, off: int, endian: str, max_entries: int = 1000) -> tuple[dict[int, tuple[int, int, bytes]], int]:
    """Entries of the IFD at ``off``: tag -> (type, count, 4 value bytes), and the next IFD offset."""
    if off <= 0 or off + 2 > len(tiff):
        return {}, 0
    n = struct.unpack(endian + "H", tiff[off : off + 2])[0]
    if n > max_entries or off + 2 + 12 * n + 4 > len(tiff):
        return {}, 0
    out = {}
    for i in range(n):
        p = off + 2 + 12 * i
        tag, typ, cnt = struct.unpack(endian + "HHI", tiff[p : p + 8])
        out[tag] = (typ, cnt, tiff[p + 8 : p + 12])
    nxt = struct.unpack(endian + "I", tiff[off + 2 + 12 * n : off + 6 + 12 * n])[0]
    return out, nxt


def _int_value(entry: tuple[int, int, bytes], endian: str) -> int | None:
    typ, cnt, raw = entry
    if cnt != 1:
        return None
    if typ == 3:
        return struct.unpack(endian + "H", raw[:2])[0]
    if typ in (4, 13):
        return struct.unpack(endian + "I", raw)[0]
    return None


def exif_thumbnail(exif: bytes | None, max_bytes: int = 256 * 1024) -> bytes | None:
    """The JPEG thumbnail stored in EXIF IFD1, or ``None``.

    Parameters
    ----------
    exif : bytes
        The EXIF block as Pillow keeps it (``info['exif']``: ``Exif\\0\\0`` then a TIFF header),
        or a bare TIFF header.
    max_bytes : int
        Larger thumbnails are ignored.

    Returns
    -------
    bytes or None
        The thumbnail's JPEG bytes (starting with ``FF D8``).
    """
    if not isinstance(exif, (bytes, bytearray)) or len(exif) < 16:
        return None
    try:
        b = bytes(exif)
        if b.startswith(b"Exif\x00\x00"):
            b = b[6:]
        if b[:2] == b"II":
            endian = "<"
        elif b[:2] == b"MM":
            endian = ">"
        else:
            return None
        if struct.unpack(endian + "H", b[2:4])[0] != 42:
            return None
        ifd0 = struct.unpack(endian + "I", b[4:8])[0]
        _, ifd1 = _ifd_entries(b, ifd0, endian)
        if not ifd1 or ifd1 == ifd0:
            return None
        entries, _ = _ifd_entries(b, ifd1, endian)
        if 0x0201 not in entries or 0x0202 not in entries:
            return None
        off = _int_value(entries[0x0201], endian)
        size = _int_value(entries[0x0202], endian)
        if off is None or size is None or size <= 4 or size > max_bytes or off + size > len(b):
            return None
        thumb = b[off : off + size]
        return thumb if thumb[:2] == b"\xff\xd8" else None
    except struct.error:
        return None


def exif_str(tags: dict[int, Any], tag: int) -> str | None:
    """A string EXIF tag, stripped of NULs and padding; ``None`` when absent or empty."""
    v = tags.get(tag)
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if not isinstance(v, str):
        return None
    v = v.replace("\x00", " ").strip()
    return v or None


def exif_float(tags: dict[int, Any], tag: int) -> float | None:
    """A numeric EXIF tag (rational, int or a 1-tuple) as float; ``None`` when absent/invalid."""
    v = tags.get(tag)
    if isinstance(v, tuple):
        if len(v) == 2 and all(isinstance(t, int) for t in v):
            return float(v[0]) / v[1] if v[1] else None
        v = v[0] if v else None
    try:
        f = float(v)  # IFDRational, int, float
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return f if f == f and abs(f) != float("inf") else None


# --------------------------------------------------------------------------------------------
# Editing software
# --------------------------------------------------------------------------------------------

#: Processing software (raw converters, organisers, viewers, transfer tools, noise reduction):
#: it re-saves or adjusts the whole picture. Checked before :data:`EDITORS` so that
#: "Adobe Photoshop Lightroom" is a processor, not Photoshop.
PROCESSORS: list[tuple[str, re.Pattern[str]]] = [
    (n, re.compile(p, re.I))
    for n, p in [
        ("Adobe Lightroom", r"lightroom"),
        ("Adobe Camera Raw", r"camera\s?raw"),
        ("Adobe Bridge", r"adobe\s+bridge"),
        ("Capture One", r"capture\s?one"),
        ("darktable", r"darktable"),
        ("RawTherapee", r"rawtherapee"),
        ("DxO", r"\bdxo\b"),
        ("Canon Digital Photo Professional", r"digital\s+photo\s+professional"),
        ("Nikon software", r"nikon\s+(?:transfer|capture|view)|viewnx|picture\s?project"),
        ("FinePix Viewer", r"finepix\s?viewer"),
        ("Olympus software", r"olympus\s+(?:master|viewer)|camedia\s+master"),
        ("Picasa", r"picasa"),
        ("Apple Photos/iPhoto/Aperture", r"\biphoto\b|\baperture\b|^photos\s+\d"),
        ("Windows Photos", r"windows\s+photo|photo\s+gallery|microsoft\s+photos|windows\s+live"),
        ("ACDSee", r"acd\s?see|acd\s+systems"),
        ("IrfanView", r"irfanview"),
        ("XnView", r"xnview"),
        ("ImageMagick", r"imagemagick|graphicsmagick"),
        ("Noise Ninja", r"noise\s?ninja"),
        ("Topaz", r"\btopaz\b"),
        ("QuickTime", r"quicktime"),
        ("digiKam/Shotwell", r"digikam|shotwell"),
    ]
]

#: Pixel editors: software that can change what a picture shows.
EDITORS: list[tuple[str, re.Pattern[str]]] = [
    (n, re.compile(p, re.I))
    for n, p in [
        ("Adobe Photoshop", r"photoshop"),
        ("GIMP", r"\bgimp\b"),
        ("Affinity Photo", r"affinity\s+photo"),
        ("Pixelmator", r"pixelmator"),
        ("Paint.NET", r"paint\.net"),
        ("PaintShop Pro", r"paint\s?shop"),
        ("Krita", r"\bkrita\b"),
        ("Photopea", r"photopea"),
        ("Snapseed", r"snapseed"),
        ("PicsArt", r"picsart"),
        ("Facetune", r"facetune"),
        ("Meitu", r"meitu"),
        ("Canva", r"\bcanva\b"),
        ("Fotor", r"\bfotor\b"),
        ("Luminar", r"luminar"),
        ("PhotoScape", r"photoscape"),
        ("Pixlr", r"pixlr"),
        ("BeFunky", r"befunky"),
        ("PhotoDirector", r"photo\s?director"),
        ("Corel PHOTO-PAINT", r"photo-?paint"),
        ("Remini", r"\bremini\b"),
        ("Lensa", r"\blensa\b"),
    ]
]


def classify_software(name: str) -> tuple[str | None, str | None]:
    """Classify a software string.

    Returns
    -------
    (kind, canonical name)
        ``("processor", "Adobe Lightroom")``, ``("editor", "GIMP")`` or ``(None, None)`` (camera
        firmware, unknown programs).
    """
    t = name[:500]
    for n, p in PROCESSORS:
        if p.search(t):
            return "processor", n
    for n, p in EDITORS:
        if p.search(t):
            return "editor", n
    return None, None


def add_exif_thumbnail(exif: bytes, thumb_jpeg: bytes) -> bytes:
    """Append a JPEG thumbnail (as IFD1) to an EXIF block, the way cameras store their preview.

    Parameters
    ----------
    exif : bytes
        EXIF bytes as Pillow writes them (``Image.Exif().tobytes()``: ``Exif\\0\\0`` + TIFF) or a
        bare TIFF header; IFD0 must not already link to an IFD1.
    thumb_jpeg : bytes
        The thumbnail's JPEG file (keep it small: a JPEG APP1 segment holds at most 64 KB).

    Returns
    -------
    bytes
        The new EXIF block, with the same prefix as ``exif``.

    Raises
    ------
    ValueError
        When ``exif`` is not a TIFF structure or already has an IFD1.
    """
    prefix = b"Exif\x00\x00" if exif.startswith(b"Exif\x00\x00") else b""
    b = bytearray(exif[len(prefix) :])
    if b[:2] == b"II":
        e = "<"
    elif b[:2] == b"MM":
        e = ">"
    else:
        raise ValueError("not a TIFF/EXIF block")
    ifd0 = struct.unpack(e + "I", b[4:8])[0]
    n = struct.unpack(e + "H", b[ifd0 : ifd0 + 2])[0]
    link = ifd0 + 2 + 12 * n
    if struct.unpack(e + "I", b[link : link + 4])[0] != 0:
        raise ValueError("IFD0 already links to another IFD")
    if len(b) % 2:
        b += b"\x00"
    ifd1 = len(b)
    entries = [(0x0103, 3, 1, 6), (0x0201, 4, 1, 0), (0x0202, 4, 1, len(thumb_jpeg))]
    data_off = ifd1 + 2 + 12 * len(entries) + 4
    entries[1] = (0x0201, 4, 1, data_off)
    out = struct.pack(e + "H", len(entries))
    for tag, typ, cnt, val in entries:
        v = struct.pack(e + "H", val) + b"\x00\x00" if typ == 3 else struct.pack(e + "I", val)
        out += struct.pack(e + "HHI", tag, typ, cnt) + v
    out += struct.pack(e + "I", 0)
    b[link : link + 4] = struct.pack(e + "I", ifd1)
    return prefix + bytes(b) + out + thumb_jpeg
