"""verity.provenance.metadata: text chunks, generator parsers, XMP, IPTC, EXIF thumbnails."""

from __future__ import annotations

import io
import json
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from verity.lab.edits import camera_exif
from verity.provenance.metadata import (
    MAX_VALUE_CHARS,
    TextEntry,
    add_exif_thumbnail,
    classify_software,
    decode_user_comment,
    exif_thumbnail,
    find_generator_names,
    find_xmp_in_bytes,
    parse_a1111,
    parse_dream,
    parse_exif_datetime,
    parse_generator_entry,
    parse_iim,
    parse_xmp,
    png_text_chunks,
)

A1111 = (
    "a castle on a hill, golden hour\nNegative prompt: blurry, lowres\n"
    "Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 987654, Size: 768x512, "
    'Model hash: abcd1234, Model: dreamshaper_8, Lora hashes: "a: 1, b: 2", Version: v1.9.4'
)


def _png(info: PngInfo | None = None, size=(8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def _chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body) & 0xFFFFFFFF)


# ---------------------------------------------------------------- parameter blocks


def test_parse_a1111():
    p = parse_a1111(A1111)
    assert p["prompt"] == "a castle on a hill, golden hour"
    assert p["negative_prompt"] == "blurry, lowres"
    assert p["steps"] == "28" and p["sampler"] == "DPM++ 2M Karras" and p["seed"] == "987654"
    assert p["cfg_scale"] == "6.5" and p["model"] == "dreamshaper_8" and p["size"] == "768x512"


def test_parse_a1111_rejects_prose():
    assert parse_a1111("Went hiking. Steps: 12000 today, very tired") is None
    assert parse_a1111("no settings here") is None


def test_parse_dream():
    d = parse_dream('"fire" -s 10 -S 1592514025 -W 384 -H 384 -C 7.5 -A k_euler')
    assert d == {"prompt": "fire", "steps": "10", "seed": "1592514025", "width": "384", "height": "384",
                 "cfg_scale": "7.5", "sampler": "k_euler"}  # fmt: skip
    assert parse_dream("just a caption") is None


def test_entry_a1111_sentence():
    h = parse_generator_entry(TextEntry("PNG text chunk", "parameters", A1111))
    s = h.sentence()
    assert h.kind == "parameters" and "Stable Diffusion" in h.generator
    assert s.startswith("PNG text chunk 'parameters' holds a Stable Diffusion prompt (Steps 28, Sampler DPM++ 2M Karras")
    assert "seed 987654" in s and "castle" in s


def test_entry_comfyui_prompt_and_workflow():
    graph = {
        "3": {"class_type": "KSampler", "inputs": {"seed": 42, "steps": 25, "cfg": 8, "sampler_name": "euler", "model": ["4", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox in snow", "clip": ["4", 1]}},
    }
    h = parse_generator_entry(TextEntry("PNG text chunk", "prompt", json.dumps(graph)))
    assert h.generator == "ComfyUI" and h.params["seed"] == 42 and h.params["steps"] == 25
    assert h.prompt == "a red fox in snow" and "sd_xl_base" in h.summary
    wf = {"nodes": [{"id": 3, "type": "KSampler"}, {"id": 6, "type": "CLIPTextEncode"}], "links": []}
    h2 = parse_generator_entry(TextEntry("PNG text chunk", "workflow", json.dumps(wf)))
    assert h2.generator == "ComfyUI" and "2 nodes" in h2.summary


def test_entry_invokeai_and_novelai():
    sd = {"model": "stable diffusion", "model_id": "stable-diffusion-1.4", "app_id": "invoke-ai/InvokeAI",
          "image": {"seed": 7, "steps": 30, "sampler": "k_lms", "cfg_scale": 7.5, "prompt": [{"prompt": "an owl", "weight": 1}]}}  # fmt: skip
    h = parse_generator_entry(TextEntry("PNG text chunk", "sd-metadata", json.dumps(sd)))
    assert "InvokeAI" in h.generator and h.prompt == "an owl" and "seed 7" in h.summary
    nai = {"prompt": "1girl", "steps": 28, "sampler": "k_euler_ancestral", "seed": 3, "scale": 11, "uc": "lowres"}
    h = parse_generator_entry(TextEntry("PNG text chunk", "Comment", json.dumps(nai)))
    assert h.generator == "NovelAI" and "Steps 28" in h.summary


def test_entry_midjourney():
    text = "a lighthouse in a storm --ar 16:9 --v 6.0 Job ID: 0c2f7a3e-1234-4bcd-9abc-0123456789ab"
    h = parse_generator_entry(TextEntry("PNG text chunk", "Description", text))
    assert h.generator == "Midjourney" and h.prompt.startswith("a lighthouse")


def test_entry_plain_text_is_not_a_generator():
    for key, text in [("Comment", "Holiday 2019, Lisbon"), ("parameters", "{not json"), ("prompt", "[1, 2, 3]")]:
        assert parse_generator_entry(TextEntry("PNG text chunk", key, text)) is None


# ---------------------------------------------------------------- names and software


def test_generator_names():
    assert find_generator_names("Made with Midjourney v6") == ["Midjourney"]
    assert "DALL-E" in find_generator_names("Created by DALL·E 3")
    assert find_generator_names("una imagen bonita de una luciérnaga (firefly)") == []
    assert find_generator_names("Adobe Firefly", software_field=True)[0] == "Adobe Firefly"
    assert find_generator_names("Firefly", software_field=True) == ["Adobe Firefly"]
    assert find_generator_names("Canon EOS 5D", software_field=True) == []


@pytest.mark.parametrize(
    "name,kind,canon",
    [
        ("Adobe Photoshop 24.0 (Windows)", "editor", "Adobe Photoshop"),
        ("Adobe Photoshop Lightroom Classic 10.1", "processor", "Adobe Lightroom"),
        ("GIMP 2.10.32", "editor", "GIMP"),
        ("Snapseed 2.0", "editor", "Snapseed"),
        ("Noise Ninja 2", "processor", "Noise Ninja"),
        ("Ver.1.00", None, None),
        ("E5700v1.0", None, None),
    ],
)
def test_classify_software(name, kind, canon):
    assert classify_software(name) == (kind, canon)


# ---------------------------------------------------------------- PNG chunks


def test_png_text_chunks_all_kinds():
    info = PngInfo()
    info.add_text("plain", "hello")
    info.add_text("zipped", "z" * 5000, zip=True)
    info.add_itxt("intl", "grüße", lang="de", tkey="Gruss", zip=True)
    entries = {e.key: e for e in png_text_chunks(_png(info))}
    assert entries["plain"].value == "hello"
    assert entries["zipped"].value == "z" * 5000
    assert entries["intl"].value == "grüße"


def test_png_text_chunk_after_idat_is_found():
    """Pillow reads only the chunks before the image data at open time; the walker reads all."""
    data = _png()
    iend = data.rfind(b"IEND") - 4
    data = data[:iend] + _chunk(b"tEXt", b"parameters\x00" + A1111.encode()) + data[iend:]
    assert [e.key for e in png_text_chunks(data)] == ["parameters"]


def test_png_huge_chunk_is_truncated_fast():
    big = b"note\x00" + b"x" * (2 * 1024 * 1024)
    data = _png()
    iend = data.rfind(b"IEND") - 4
    data = data[:iend] + _chunk(b"zTXt", b"big\x00\x00" + zlib.compress(b"y" * (3 * 1024 * 1024))) + _chunk(b"tEXt", big) + data[iend:]
    t0 = time.perf_counter()
    entries = png_text_chunks(data)
    assert time.perf_counter() - t0 < 5.0  # generous: bounded work, not a timing test
    by = {e.key: e for e in entries}
    assert by["big"].truncated and len(by["big"].value) == MAX_VALUE_CHARS
    assert by["note"].truncated and len(by["note"].value) == MAX_VALUE_CHARS
    # generator keywords are kept up to MAX_JSON_CHARS so that large ComfyUI graphs still parse
    long_json = b"workflow\x00" + b"{" + b" " * (600 * 1024) + b"}"
    data2 = _png()
    j = data2.rfind(b"IEND") - 4
    (wf,) = png_text_chunks(data2[:j] + _chunk(b"tEXt", long_json) + data2[j:])
    assert not wf.truncated and len(wf.value) > MAX_VALUE_CHARS


def test_png_broken_chunks_never_raise(rng):
    data = bytearray(_png(size=(16, 16)))
    for _ in range(200):
        d = bytearray(data)
        for i in rng.integers(8, len(d), 6):
            d[int(i)] = int(rng.integers(0, 256))
        png_text_chunks(bytes(d))
    assert png_text_chunks(b"\x89PNG\r\n\x1a\n" + b"\xff" * 20) == []
    assert png_text_chunks(b"not a png") == []


# ---------------------------------------------------------------- EXIF text, IPTC


def test_user_comment_encodings():
    assert decode_user_comment(b"ASCII\x00\x00\x00Steps: 20") == "Steps: 20"
    assert decode_user_comment(b"UNICODE\x00" + "héllo".encode("utf-16-be")) == "héllo"
    assert decode_user_comment(b"UNICODE\x00" + "héllo".encode("utf-16-le")) == "héllo"
    assert decode_user_comment(None) == ""


def test_exif_datetime():
    assert parse_exif_datetime("2019:06:01 10:20:30").isoformat() == "2019-06-01T10:20:30"
    assert parse_exif_datetime("0000:00:00 00:00:00") is None
    assert parse_exif_datetime("    ") is None and parse_exif_datetime(12) is None


def test_parse_iim():
    def ds(num, text):
        b = text.encode()
        return bytes([0x1C, 2, num]) + struct.pack(">H", len(b)) + b

    data = ds(0, "\x00\x04") + ds(65, "Midjourney") + ds(120, "A caption") + ds(25, "k1") + ds(25, "k2")
    r = parse_iim(data)
    assert r["2:65"] == ["Midjourney"] and r["2:25"] == ["k1", "k2"] and r["2:120"] == ["A caption"]
    assert parse_iim(b"\x1c\x02\x78\xff\xff") == {}  # length beyond the end: no crash
    assert parse_iim(b"") == {}


# ---------------------------------------------------------------- XMP


XMP_ATTR = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
    'xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
    'Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia" '
    'xmp:CreatorTool="Adobe Photoshop 25.0" xmp:ModifyDate="2024-01-02T03:04:05"/></rdf:RDF></x:xmpmeta>'
)
XMP_ELEM = (
    "<x:xmpmeta><rdf:RDF><rdf:Description>"
    "<Iptc4xmpExt:DigitalSourceType>http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
    "</Iptc4xmpExt:DigitalSourceType>"
    "<photoshop:DocumentAncestors><rdf:Bag><rdf:li>xmp.did:1</rdf:li><rdf:li>xmp.did:2</rdf:li></rdf:Bag></photoshop:DocumentAncestors>"
    '<xmpMM:History><rdf:Seq><rdf:li stEvt:action="created" stEvt:softwareAgent="GIMP 2.10"/>'
    '<rdf:li stEvt:action="saved" stEvt:softwareAgent="Adobe Photoshop 24.0"/></rdf:Seq></xmpMM:History>'
    '<dc:description><rdf:Alt><rdf:li xml:lang="x-default">Made with &amp; love</rdf:li></rdf:Alt></dc:description>'
    "</rdf:Description></rdf:RDF></x:xmpmeta>"
)


def test_parse_xmp_attribute_form():
    x = parse_xmp(XMP_ATTR)
    assert x.digital_source_types == ["compositeWithTrainedAlgorithmicMedia"]
    assert x.creator_tool == "Adobe Photoshop 25.0" and x.modify_date == "2024-01-02T03:04:05"
    assert x.is_xml_like


def test_parse_xmp_element_form():
    x = parse_xmp(XMP_ELEM)
    assert x.digital_source_types == ["trainedAlgorithmicMedia"]
    assert x.document_ancestors == 2
    assert x.software_agents == ["GIMP 2.10", "Adobe Photoshop 24.0"]
    assert x.history_actions == ["created", "saved"]
    assert ("dc:description", "Made with & love") in x.texts


def test_parse_xmp_resource_form_and_garbage():
    x = parse_xmp('<Iptc4xmpExt:DigitalSourceType rdf:resource="http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"/>')
    assert x.digital_source_types == ["digitalCapture"]
    for junk in ["", "<<<<>>>>", "not xml at all " * 1000, "<x:xmpmeta>" + "<" * 100_000, "\x00\xff" * 50]:
        parse_xmp(junk)  # never raises
    assert not parse_xmp("plain words").is_xml_like


def test_find_xmp_in_bytes_is_bounded():
    pkt = XMP_ATTR.encode()
    assert find_xmp_in_bytes(b"\x00" * 100 + pkt + b"\x00" * 100) == XMP_ATTR
    middle = b"\x00" * 5000 + pkt + b"\x00" * 5000
    assert find_xmp_in_bytes(middle, scan=1000) is None
    tail = b"\x00" * 5000 + pkt
    assert find_xmp_in_bytes(tail, scan=len(pkt) + 10) == XMP_ATTR
    unterminated = b"<x:xmpmeta " + b"a" * 100
    assert find_xmp_in_bytes(unterminated).startswith("<x:xmpmeta")


# ---------------------------------------------------------------- EXIF thumbnail


def _thumb_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (160, 120), (200, 10, 10)).save(buf, format="JPEG", quality=75)
    return buf.getvalue()


@pytest.mark.parametrize("endian", ["II", "MM"])
def test_exif_thumbnail_round_trip(endian):
    ex = Image.Exif()
    ex[0x010F] = "Nikon"
    raw = ex.tobytes()
    if endian == "MM":  # build a big-endian TIFF by hand: header + IFD0 with Make
        make = b"Nikon\x00"
        raw = b"Exif\x00\x00MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 1) + struct.pack(">HHII", 0x010F, 2, len(make), 26) + struct.pack(">I", 0) + make
    t = _thumb_jpeg()
    out = add_exif_thumbnail(raw, t)
    assert exif_thumbnail(out) == t
    with pytest.raises(ValueError):
        add_exif_thumbnail(out, t)  # already has IFD1


def test_exif_thumbnail_absent_or_broken(rng):
    assert exif_thumbnail(camera_exif()) is None
    assert exif_thumbnail(None) is None and exif_thumbnail(b"Exif\x00\x00garbage") is None
    good = add_exif_thumbnail(camera_exif(), _thumb_jpeg())
    for _ in range(300):
        d = bytearray(good)
        for i in rng.integers(0, len(d), 4):
            d[int(i)] = int(rng.integers(0, 256))
        r = exif_thumbnail(bytes(d))
        assert r is None or r[:2] == b"\xff\xd8"
