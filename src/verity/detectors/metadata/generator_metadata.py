"""Generator settings and generator names in a file's metadata."""

from __future__ import annotations

from verity.core.registry import Detector, register_detector
from verity.core.types import Finding, Sample

#: Fields whose value names the program that wrote the file.
_SOFTWARE_KEYS = {
    "software", "processingsoftware", "hostcomputer", "originatingprogram", "programversion",
    "source", "generator", "creator tool", "xmp:creatortool", "stevt:softwareagent", "tool",
}  # fmt: skip


@register_detector
class GeneratorMetadata(Detector):
    """Finds the traces image generators leave in metadata.

    Reads every text value the container carries (PNG tEXt/zTXt/iTXt chunks straight from the
    bytes, JPEG/GIF comments, EXIF text tags including UserComment, IPTC-IIM, XMP) and looks for

    1. a structured block of generation settings (strongest): AUTOMATIC1111/Forge ``parameters``
       (also in EXIF UserComment of JPEG/WebP), ComfyUI ``prompt``/``workflow`` graphs, InvokeAI
       ``Dream``/``sd-metadata``/``invokeai_metadata``, NovelAI ``Comment`` JSON, Midjourney job
       lines, generic JSON with steps and sampler/seed;
    2. a generator named in a software field (Software, CreatorTool, softwareAgent,
       OriginatingProgram);
    3. a generator named in free text (description, keywords, comments).

    Scores (``ai_generated``): settings block 0.99, software field 0.97, free-text mention 0.85.
    Nothing found -> abstain: most generated images lose their metadata on upload, so absence says
    nothing. Weight 2.0: a settings block is written only by generation software, so one such
    finding is enough to make the fused verdict ``ai_generated`` (with the default bias -1.5,
    2.0 x logit(0.99) = 9.2). Metadata can be forged or copied, which the evidence sentences say
    implicitly by quoting exactly where the text was found.
    """

    name = "generator_metadata"
    kind = "metadata"
    labels = ("ai_generated",)
    weight = 2.0

    def run(self, sample: Sample) -> Finding:
        from verity.provenance.metadata import (
            GeneratorHit,
            TextEntry,
            find_generator_names,
            parse_generator_entry,
            parse_xmp,
            sample_text_entries,
            sample_xmp,
        )

        entries: list[TextEntry] = sample_text_entries(sample)
        xmp, xwhere = sample_xmp(sample)
        if xmp:
            xi = parse_xmp(xmp)
            if xi.creator_tool:
                entries.append(TextEntry("XMP", "xmp:CreatorTool", xi.creator_tool))
            for a in xi.software_agents[:20]:
                entries.append(TextEntry("XMP", "stEvt:softwareAgent", a))
            for q, v in xi.texts[:50]:
                entries.append(TextEntry("XMP", q, v))
        hits: list[GeneratorHit] = []
        seen: set[tuple[str, str]] = set()
        for e in entries:
            h = None
            try:
                h = parse_generator_entry(e)
            except Exception:  # noqa: BLE001 - a parser bug on odd text must not lose the rest
                h = None
            if h is not None:
                hits.append(h)
                seen.add((h.generator.split(" (")[0], e.where))
                continue
            is_soft = e.key.lower() in _SOFTWARE_KEYS
            for g in find_generator_names(e.value, software_field=is_soft):
                if (g, e.where) in seen:
                    continue
                seen.add((g, e.where))
                hits.append(GeneratorHit(g, "software" if is_soft else "mention", e.where, e.value))
        n_fields = len(entries)
        if not hits:
            where = f"{n_fields} text field{'s' if n_fields != 1 else ''}" + (", XMP" if xmp else "")
            return self.abstain(
                f"No generator settings or generator names in the file's metadata ({where} read); "
                "most generated images lose such metadata on upload, so this is not evidence either way.",
                text_fields=n_fields,
            )
        order = {"parameters": 0, "software": 1, "mention": 2}
        hits.sort(key=lambda h: order[h.kind])
        score = {"parameters": 0.99, "software": 0.97, "mention": 0.85}[hits[0].kind]
        evidence = [h.sentence() for h in hits[:4]]
        if len(hits) > 4:
            evidence.append(f"{len(hits) - 4} more metadata fields name a generator.")
        return self.finding(
            score,
            evidence,
            details={
                "hits": [
                    {"generator": h.generator, "kind": h.kind, "where": h.where, "summary": h.summary[:200],
                     "params": {k: v for k, v in h.params.items() if isinstance(v, (int, float, str)) and k != "prompt"}}
                    for h in hits[:10]
                ],
                "text_fields": n_fields,
            },
        )
