"""Every image the lab writes says that it is synthetic.

:func:`write_png` stores

* an XMP packet in the PNG ``iTXt`` chunk ``XML:com.adobe.xmp`` with
  ``Iptc4xmpExt:DigitalSourceType`` = ``http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia``
  (the IPTC term for media created by a model trained on sampled content) and ``xmp:CreatorTool``;
* a ``tEXt`` chunk ``Software`` = ``verity-lab <family> <run id>``, naming the generator.

:func:`read_marks` reads them back. Nothing here needs torch.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
XMP_KEY = "XML:com.adobe.xmp"
SOFTWARE_KEY = "Software"


def generator_name(family: str, run_id: str) -> str:
    """The string written to the ``Software`` chunk and ``xmp:CreatorTool``."""
    return f"verity-lab {family} {run_id}"


def xmp_packet(family: str, run_id: str, description: str | None = None) -> str:
    """An XMP packet declaring the image trained-algorithmic media made by ``family``/``run_id``."""
    tool = escape(generator_name(family, run_id))
    desc = ""
    if description:
        desc = (
            "\n   <dc:description><rdf:Alt><rdf:li xml:lang=\"x-default\">"
            f"{escape(description)}</rdf:li></rdf:Alt></dc:description>"
        )
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        '    xmlns:dc="http://purl.org/dc/elements/1.1/">\n'
        f"   <Iptc4xmpExt:DigitalSourceType>{DIGITAL_SOURCE_TYPE}</Iptc4xmpExt:DigitalSourceType>\n"
        f"   <xmp:CreatorTool>{tool}</xmp:CreatorTool>{desc}\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    )


def png_bytes(pixels: np.ndarray, family: str, run_id: str, description: str | None = None,
              compress_level: int = 6) -> bytes:
    """Encode (H, W, 3) uint8 pixels as a marked PNG."""
    from PIL import Image, PngImagePlugin

    arr = np.ascontiguousarray(pixels)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint8 pixels, got {arr.shape} {arr.dtype}")
    info = PngImagePlugin.PngInfo()
    info.add_itxt(XMP_KEY, xmp_packet(family, run_id, description), lang="", tkey="", zip=False)
    info.add_text(SOFTWARE_KEY, generator_name(family, run_id))
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", pnginfo=info, compress_level=compress_level)
    return buf.getvalue()


def write_png(path: str | os.PathLike, pixels: np.ndarray, family: str, run_id: str,
              description: str | None = None, sign: bool = False) -> Path:
    """Write a marked PNG (parent folders are created). With ``sign=True`` the file is also signed
    with a C2PA manifest (``trainedAlgorithmicMedia``, development credentials) through
    :func:`verity.provenance.c2pa.sign_synthetic`; if that fails the file is written unsigned with a
    warning."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    data = png_bytes(pixels, family, run_id, description)
    if sign:
        data = _try_sign(data, family, run_id)
    p.write_bytes(data)
    return p


def _try_sign(data: bytes, family: str, run_id: str) -> bytes:
    """Sign through :func:`verity.provenance.c2pa.sign_synthetic` (development credentials); on any
    failure warn once on stderr and return the unsigned (still XMP-marked) bytes."""
    import sys

    try:
        from verity.provenance.c2pa import sign_synthetic

        return sign_synthetic(data, generator=generator_name(family, run_id))
    except Exception as e:  # noqa: BLE001 - signing is optional; the XMP mark is always there
        if not getattr(_try_sign, "warned", False):
            sys.stderr.write(f"verity lab: C2PA signing unavailable ({type(e).__name__}: {e}); "
                             "writing XMP-marked PNGs only\n")
            _try_sign.warned = True  # type: ignore[attr-defined]
        return data


def read_marks(source: str | os.PathLike | bytes) -> dict[str, str | None]:
    """The lab's marks in a PNG: ``digital_source_type`` and ``software`` (``None`` when absent)."""
    from PIL import Image

    data = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    with Image.open(io.BytesIO(bytes(data))) as im:
        info = dict(im.info)
    xmp = info.get(XMP_KEY) or ""
    if isinstance(xmp, bytes):
        xmp = xmp.decode("utf-8", "replace")
    m = re.search(r"DigitalSourceType(?:>|=\")\s*([^<\"\s]+)", xmp)
    return {"digital_source_type": m.group(1) if m else None, "software": info.get(SOFTWARE_KEY)}
