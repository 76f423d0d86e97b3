"""A self-contained HTML report: each image with its verdict, probabilities, evidence, and every
heatmap as a toggleable overlay. No external assets: images are embedded as data URIs.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable
from dataclasses import dataclass

from typing import Any

from verity.core.types import CLASSES, Sample, Verdict
from verity.report.render import display_image, heatmap_png, jpeg_bytes

VERDICT_COLOURS = {
    "authentic": "#1b7f3b",
    "ai_generated": "#8a2be2",
    "edited": "#c0392b",
    "face_manipulated": "#d35400",
    "inconclusive": "#7f8c8d",
}


@dataclass
class ReportItem:
    """One analysed file: its verdict and the sample (None when it could not be read)."""

    path: str
    verdict: Verdict | None = None
    sample: Sample | None = None
    error: str | None = None
    #: a :class:`verity.video.analyze.VideoResult` for videos (thumbnails and previews)
    video: Any = None


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _esc(s: object) -> str:
    return html.escape(str(s), quote=True)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
main{max-width:1200px;margin:0 auto;padding:16px}
.card{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.12);margin:16px 0;padding:16px}
.row{display:flex;gap:20px;flex-wrap:wrap}.imgcol{flex:1 1 480px;min-width:280px}.side{flex:1 1 340px}
.stage{position:relative;display:inline-block;max-width:100%}.stage img{display:block;max-width:100%;height:auto}
.stage img.ov{position:absolute;left:0;top:0;width:100%;height:100%;display:none;pointer-events:none}
.stage .face{position:absolute;border:2px solid #f1c40f;pointer-events:none}
.stage .face span{position:absolute;top:-18px;left:0;background:#f1c40f;font-size:11px;padding:0 3px}
.verdict{display:inline-block;color:#fff;border-radius:6px;padding:4px 10px;font-weight:600;font-size:18px}
.bar{display:flex;align-items:center;gap:8px;margin:3px 0;font-size:13px}.bar .lab{width:130px}
.bar .track{flex:1;background:#e6e8ec;border-radius:4px;height:12px;overflow:hidden}
.bar .fill{height:100%}.bar .val{width:48px;text-align:right}
.kind{margin-top:10px;font-size:12px;text-transform:uppercase;letter-spacing:.05em;color:#68707d}
.f{border-left:3px solid #ccd;padding:4px 8px;margin:6px 0;font-size:13px}.f b{font-family:monospace}
.f.hot{border-color:#c0392b}.f.cool{border-color:#1b7f3b}.f.abs{color:#8a909a}
.toggles label{display:inline-block;margin:4px 10px 4px 0;font-size:13px;cursor:pointer}
.err{color:#c0392b;font-weight:600}.warn{background:#fff8e1;border:1px solid #f3d27a;border-radius:6px;padding:6px 10px}.meta{font-size:12px;color:#68707d}
.timeline{max-width:100%;height:auto;display:block;margin:8px 0}
table.segs{border-collapse:collapse;font-size:13px;margin:6px 0}table.segs td,table.segs th{padding:3px 8px;
border-bottom:1px solid #e6e8ec;text-align:left;vertical-align:top}
"""

JS = """
document.querySelectorAll('.card').forEach(function(card){
  var op = card.querySelector('input[type=range]');
  function apply(){ card.querySelectorAll('img.ov').forEach(function(o){ o.style.opacity = op ? op.value/100 : 0.7; }); }
  card.querySelectorAll('input[data-ov]').forEach(function(cb){
    cb.addEventListener('change', function(){
      var o = card.querySelector('img.ov[data-name="'+cb.dataset.ov+'"]'); if(o){ o.style.display = cb.checked ? 'block':'none'; }
    });
  });
  if(op){ op.addEventListener('input', apply); } apply();
});
"""


#: How a finding's role (:func:`verity.core.fusion.evidence_roles`) is worded next to its score.
ROLE_WORDS = {"decisive": "decisive", "outweighed": "outweighed by the other evidence",
              "minor": "little weight in the verdict", "abstained": "abstained"}


def finding_tone(v: Verdict, f) -> str:
    """``hot`` (red), ``cool`` (green), ``neutral`` or ``abstain``: red and green only for decisive
    findings, so that the colours agree with the verdict; without roles (old documents) by score."""
    if f.score is None:
        return "abstain"
    role = (v.roles.get(f.detector) or {}).get("role")
    if role is None:
        return "hot" if f.score >= 0.65 else "cool" if f.score <= 0.35 else "neutral"
    if role != "decisive":
        return "neutral"
    return "cool" if v.verdict == "authentic" else "hot"


def default_overlay(v: Verdict, detector: str) -> bool:
    """Whether a heatmap is shown before anyone asks: only a decisive finding of a fake verdict."""
    return v.verdict not in ("authentic", "inconclusive") and (v.roles.get(detector) or {}).get("role") == "decisive"


def _bars(probs: dict[str, float], intervals: dict[str, dict] | None = None) -> str:
    from verity.core.display import format_interval, format_probability

    out = []
    for c in CLASSES:
        p = probs.get(c, 0.0)
        iv = (intervals or {}).get(c)
        title = f' title="{_esc(format_interval(iv["low"], iv["high"], iv.get("level", 0.9)))} from calibration data"' \
            if iv else ""
        out.append(
            f'<div class="bar"{title}><span class="lab">{_esc(c.replace("_", " "))}</span>'
            f'<span class="track"><span class="fill" style="display:block;width:{100 * p:.1f}%;'
            f'background:{VERDICT_COLOURS[c]}"></span></span><span class="val">{_esc(format_probability(p))}</span></div>'
        )
    top = max(CLASSES, key=lambda c: probs.get(c, 0.0))
    iv = (intervals or {}).get(top)
    if iv:
        out.append(f'<p class="meta">{_esc(top.replace("_", " "))} {_esc(format_probability(probs.get(top, 0.0)))}: '
                   f'{_esc(format_interval(iv["low"], iv["high"], iv.get("level", 0.9)))} (the share that really was '
                   f'{_esc(top.replace("_", " "))} among {iv.get("examples", 0)} calibration examples, '
                   f'{iv.get("images", 0):g} images, with a probability in {round(100 * iv["bin"][0])}-'
                   f'{round(100 * iv["bin"][1])}%)</p>' if iv.get("bin") else
                   f'<p class="meta">{_esc(format_interval(iv["low"], iv["high"], iv.get("level", 0.9)))}</p>')
    return "".join(out)


def _side(v: Verdict) -> str:
    groups: dict[str, list[str]] = {}
    for f in sorted(v.findings, key=lambda f: -1 if f.score is None else -abs(f.score - 0.5)):
        cls = {"hot": "hot", "cool": "cool", "abstain": "abs"}.get(finding_tone(v, f), "")
        score = "abstained" if f.score is None else f"{f.score:.2f}"
        role = (v.roles.get(f.detector) or {}).get("role")
        if role in ("outweighed", "minor"):
            score += " (not enough for a verdict)" if role == "outweighed" and v.verdict == "inconclusive" \
                else f" ({ROLE_WORDS[role]})"
        ev = "<br>".join(_esc(e) for e in f.evidence[:6]) or "&nbsp;"
        groups.setdefault(f.kind, []).append(f'<div class="f {cls}"><b>{_esc(f.detector)}</b> {score}<br>{ev}</div>')
    return "".join(f'<div class="kind">{_esc(kd)}</div>' + "".join(items) for kd, items in groups.items())


def _video_html(i: int, item: ReportItem) -> str:
    from verity.report.timeline import timeline_svg

    v, res = item.verdict, item.video
    vi = v.video or {}
    colour = VERDICT_COLOURS.get(v.verdict, "#555")
    poster_t = v.segments[0].start if v.segments else 0.0
    prev = res.preview_at(poster_t) if res is not None else None
    poster = (f'<figure style="margin:0"><img src="{_data_uri(prev[1], "image/jpeg")}" alt="frame at {prev[0]:.2f} s" '
              f'style="max-width:100%"><figcaption class="meta">frame at {prev[0]:.2f} s'
              f'{" (start of the most suspicious segment)" if v.segments else ""}</figcaption></figure>') if prev else ""
    rows = "".join(
        f"<tr><td>{s.start:.1f}-{s.end:.1f} s</td><td>{_esc(s.label.replace('_', ' '))}</td><td>{s.score:.2f}</td>"
        f"<td>{_esc(s.reason)}</td></tr>" for s in v.segments)
    segs = (f'<table class="segs"><tr><th>segment</th><th>class</th><th>score</th><th>why</th></tr>{rows}</table>'
            if rows else '<p class="meta">No suspicious segment.</p>')
    trows = "".join(
        f"<tr><td>track {t.id}</td><td>{t.start:.1f}-{t.end:.1f} s</td><td>{len(t.times)}</td>"
        f"<td>{'n/a' if t.score is None else f'{t.score:.2f}'}</td><td>{_esc(' '.join(t.evidence[:1]))}</td></tr>"
        for t in v.tracks)
    tracks = (f'<table class="segs"><tr><th>face</th><th>seen</th><th>frames</th><th>score</th><th></th></tr>{trows}</table>'
              if trows else '<p class="meta">No face tracked.</p>')
    svg = timeline_svg(v, res.thumbnails if res is not None else None)
    im = v.image
    return f"""
<section class="card" id="item{i}">
  <h2 style="margin-top:0">{_esc(item.path)}</h2>
  <p><span class="verdict" style="background:{colour}">{_esc(v.verdict.replace("_", " "))}</span>
     <span class="meta">{_esc(vi.get("container"))} {_esc(vi.get("codec"))} {im.get("width")}x{im.get("height")},
     {float(vi.get("duration") or 0):.1f} s, {vi.get("frames_sampled")} frames sampled at {vi.get("sample_fps")}/s,
     {im.get("bytes")} bytes, sha256 {_esc(str(im.get("sha256", ""))[:16])}&hellip;</span></p>
  <p>{_esc(v.explanation)}</p>
  <h3 style="margin:8px 0 0;font-size:15px">Scores over time</h3>
  {svg}
  <div class="row">
    <div class="imgcol"><h3 style="font-size:15px">Suspicious segments</h3>{segs}
      <h3 style="font-size:15px">Face tracks</h3>{tracks}{poster}</div>
    <div class="side">{_bars(v.probabilities)}{_side(v)}</div>
  </div>
  {"".join(f'<p class="err">{_esc(e)}</p>' for e in v.errors)}
</section>"""


def _item_html(i: int, item: ReportItem, max_side: int) -> str:
    if item.verdict is not None and item.verdict.video is not None:
        return _video_html(i, item)
    if item.verdict is None or item.sample is None:
        return (
            f'<section class="card"><h2>{_esc(item.path)}</h2>'
            f'<p class="err">Could not be analysed: {_esc(item.error or "unknown error")}</p></section>'
        )
    v, s = item.verdict, item.sample
    disp = display_image(s.pixels, s.orientation, max_side)
    dh, dw = disp.shape[:2]
    img = _data_uri(jpeg_bytes(disp), "image/jpeg")
    overlays, toggles = [], []
    for f in v.findings:
        if f.heatmap is None:
            continue
        uri = _data_uri(heatmap_png(f.heatmap, (s.height, s.width), s.orientation, max_side), "image/png")
        on = default_overlay(v, f.detector)  # only a decisive finding that points the verdict's way
        shown = ' style="display:block"' if on else ""
        overlays.append(f'<img class="ov" data-name="{_esc(f.detector)}" src="{uri}" alt="{_esc(f.detector)} heatmap"'
                        f'{shown}>')
        toggles.append(
            f'<label><input type="checkbox" data-ov="{_esc(f.detector)}"{" checked" if on else ""}> {_esc(f.detector)}'
            f'{"" if f.score is None else f" ({f.score:.2f})"}</label>'
        )
    # faces are in display coordinates of the full-size oriented image
    full_w = s.height if s.orientation in (5, 6, 7, 8) else s.width
    k = dw / max(1, full_w)
    faces = []
    for n, face in enumerate(v.faces):
        x0, y0, x1, y1 = (c * k for c in face.box)
        lab = f"face {n + 1}" + ("" if face.manipulation_score is None else f": {face.manipulation_score:.2f}")
        faces.append(
            f'<div class="face" style="left:{100 * x0 / dw:.2f}%;top:{100 * y0 / dh:.2f}%;'
            f'width:{100 * (x1 - x0) / dw:.2f}%;height:{100 * (y1 - y0) / dh:.2f}%"><span>{_esc(lab)}</span></div>'
        )
    side = _side(v)
    colour = VERDICT_COLOURS.get(v.verdict, "#555")
    slider = (
        '<label style="font-size:13px">opacity <input type="range" min="10" max="100" value="70"></label>'
        if overlays
        else '<span class="meta">no heatmaps for this image</span>'
    )
    im = v.image
    return f"""
<section class="card" id="item{i}">
  <h2 style="margin-top:0">{_esc(item.path)}</h2>
  <p><span class="verdict" style="background:{colour}">{_esc(v.verdict.replace("_", " "))}</span>
     <span class="meta">{_esc(im.get("format"))} {im.get("width")}x{im.get("height")}, {im.get("bytes")} bytes,
     sha256 {_esc(str(im.get("sha256", ""))[:16])}&hellip;</span></p>
  <p>{_esc(v.explanation)}</p>{f'<p class="meta">{_esc(v.family_sentence())}</p>' if v.family_sentence() else ""}{"".join(f'<p class="warn">{_esc(w)}</p>' for w in v.warnings)}
  <div class="row">
    <div class="imgcol">
      <div class="toggles">{"".join(toggles)} {slider}</div>
      <div class="stage"><img src="{img}" alt="analysed image">{"".join(overlays)}{"".join(faces)}</div>
    </div>
    <div class="side">{_bars(v.probabilities, v.intervals)}{side}</div>
  </div>
</section>"""


def render_item(item: ReportItem, index: int = 0, max_side: int = 1200) -> str:
    """The HTML section of one item (render as you go to avoid keeping every image in memory)."""
    return _item_html(index, item, max_side)


def render_html(items: Iterable[ReportItem | str], title: str = "verity report", max_side: int = 1200) -> str:
    """Return the whole report as one HTML string; items may be pre-rendered sections."""
    from verity import __version__

    body = "".join(it if isinstance(it, str) else _item_html(i, it, max_side) for i, it in enumerate(items))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{_esc(title)}</title><style>{CSS}</style></head>
<body><header><h1>{_esc(title)}</h1><div class="meta" style="color:#b8bfcc">verity {__version__}: probabilities are
calibrated estimates, not proof; read the evidence.</div></header>
<main>{body}</main><script>{JS}</script></body></html>
"""
