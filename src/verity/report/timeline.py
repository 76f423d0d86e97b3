"""A self-contained SVG timeline of a video verdict: each per-frame score and each face track's
score over time, the suspicious segments shaded, and a strip of thumbnails under the time axis.
Used by the HTML report and served by the API for the web page.
"""

from __future__ import annotations

import base64
import html

from verity.core.types import Verdict

#: Line colours of the series, cycled.
PALETTE = ("#2e86de", "#8a2be2", "#16a085", "#7f8c8d", "#b7950b", "#34495e")
TRACK_COLOURS = ("#d35400", "#e84393", "#c0392b", "#e67e22")


def _esc(s: object) -> str:
    return html.escape(str(s), quote=True)


def pick_thumbnails(times: list[float], segments, n: int = 10) -> list[int]:
    """Indices of up to ``n`` evenly spaced sampled frames plus the first frame of each segment."""
    if not times:
        return []
    k = min(n, len(times))
    idx = {round(i * (len(times) - 1) / max(1, k - 1)) for i in range(k)}
    for s in segments:
        idx.add(min(range(len(times)), key=lambda i: abs(times[i] - s.start)))
    return sorted(idx)


def timeline_svg(verdict: Verdict, thumbnails: list[tuple[float, bytes]] | None = None, width: int = 900,
                 n_thumbs: int = 10) -> str:
    """The timeline as an SVG string (thumbnails embedded as JPEG data URIs)."""
    vid = verdict.video or {}
    tl = vid.get("timeline", {})
    times: list[float] = tl.get("times", [])
    dur = float(vid.get("analysed_seconds") or (times[-1] if times else 1.0)) or 1.0
    left, right, top, plot_h = 40, 12, 14, 170
    thumb_w = 96
    thumb_h = int(thumb_w * (vid.get("height") or 9) / max(1, vid.get("width") or 16))
    thumbs = thumbnails or []
    strip_h = thumb_h + 22 if thumbs else 0
    legend_h = 22
    h = top + plot_h + 24 + strip_h + legend_h
    pw = width - left - right

    def x(t: float) -> float:
        return left + pw * max(0.0, min(1.0, t / dur))

    def y(s: float) -> float:
        return top + plot_h * (1.0 - s)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {width} {h}" width="{width}" '
           f'height="{h}" font-family="system-ui,sans-serif" font-size="11" role="img" '
           f'aria-label="scores over time">',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{plot_h}" fill="#fafbfc" stroke="#d0d4da"/>']
    for seg in verdict.segments:
        out.append(f'<rect x="{x(seg.start):.1f}" y="{top}" width="{max(2.0, x(seg.end) - x(seg.start)):.1f}" '
                   f'height="{plot_h}" fill="#c0392b" fill-opacity="0.15"><title>{_esc(f"{seg.start:.1f}-{seg.end:.1f} s: {seg.reason}")}'
                   f'</title></rect>')
    for v in (0.0, 0.5, 1.0):
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#c8ccd2" '
                   f'stroke-dasharray="{"4 3" if v == 0.5 else "0"}"/>'
                   f'<text x="{left - 4}" y="{y(v) + 4:.1f}" text-anchor="end" fill="#68707d">{v:g}</text>')
    step = max(1.0, round(dur / 8))
    t = 0.0
    while t <= dur + 1e-6:
        out.append(f'<text x="{x(t):.1f}" y="{top + plot_h + 14}" text-anchor="middle" fill="#68707d">{t:g} s</text>')
        t += step
    legend = []

    def line(points, colour, label, width_px=1.6, dash=""):
        pts = [(a, b) for a, b in points if b is not None]
        if not pts:
            return
        d = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in pts)
        out.append(f'<polyline points="{d}" fill="none" stroke="{colour}" stroke-width="{width_px}" '
                   f'stroke-dasharray="{dash}"><title>{_esc(label)}</title></polyline>')
        for a, b in pts:
            out.append(f'<circle cx="{x(a):.1f}" cy="{y(b):.1f}" r="2.2" fill="{colour}"><title>{_esc(f"{label} {b:.2f} at {a:.2f} s")}</title></circle>')
        legend.append((colour, label))

    for i, (name, vals) in enumerate(tl.get("series", {}).items()):
        line(list(zip(times, vals)), PALETTE[i % len(PALETTE)], name, 1.3)
    for i, (name, pts) in enumerate(tl.get("keyframes", {}).items()):
        colour = PALETTE[(i + 3) % len(PALETTE)]
        for a, b in pts:
            if b is not None:
                out.append(f'<rect x="{x(a) - 3:.1f}" y="{y(b) - 3:.1f}" width="6" height="6" fill="{colour}">'
                           f'<title>{_esc(f"{name} {b:.2f} at {a:.2f} s (key frame)")}</title></rect>')
        legend.append((colour, f"{name} (key frames)"))
    for i, tr in enumerate(verdict.tracks):
        line(list(zip(tr.times, tr.scores)), TRACK_COLOURS[i % len(TRACK_COLOURS)], f"face track {tr.id}", 2.4)
    if thumbs:
        ty = top + plot_h + 22
        ttimes = [a for a, _ in thumbs]
        chosen = pick_thumbnails(ttimes, verdict.segments, n_thumbs)
        max_n = max(1, int(pw // (thumb_w + 4)))
        if len(chosen) > max_n:
            chosen = [chosen[round(i * (len(chosen) - 1) / max(1, max_n - 1))] for i in range(max_n)]
        slots = len(chosen)
        for k, i in enumerate(chosen):
            tt, jpg = thumbs[i]
            sx = left + (pw - thumb_w) * (k / max(1, slots - 1)) if slots > 1 else left
            uri = "data:image/jpeg;base64," + base64.b64encode(jpg).decode("ascii")
            out.append(f'<line x1="{x(tt):.1f}" y1="{top + plot_h}" x2="{sx + thumb_w / 2:.1f}" y2="{ty}" stroke="#aab"/>'
                       f'<image href="{uri}" x="{sx:.1f}" y="{ty}" width="{thumb_w}" height="{thumb_h}">'
                       f'<title>{tt:.2f} s</title></image>'
                       f'<text x="{sx + thumb_w / 2:.1f}" y="{ty + thumb_h + 12}" text-anchor="middle" fill="#68707d">{tt:.1f} s</text>')
    lx, ly = left, h - 6
    for colour, label in legend:
        out.append(f'<rect x="{lx}" y="{ly - 8}" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{lx + 14}" y="{ly + 1}" fill="#1d2330">{_esc(label)}</text>')
        lx += 24 + 6.5 * len(label)
    out.append("</svg>")
    return "".join(out)
