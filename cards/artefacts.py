"""The card's "Known artefacts" section: how many healthy images each fill artefact detector flagged, and
which (measured at build time by builder.build.fill_artefacts; nothing here is assumed)."""
from __future__ import annotations

from cards.text import CardFacts

SHOWN_IDS = 20  # ids listed per detector in the card; the manifest keeps them all

WHAT = {
    "copied_mark": "text or a mark (watermark, caption, ink) from elsewhere in the photo reappears inside the fill",
    "foreign_colour": "part of the fill has a colour no skin around it has (a dark smudge, a drape's colour), "
                      "as the largest share of any 31 px square",
    "seam": "a straight seam crosses the fill (a stretch of a row or column stands out from those beside it)",
    "tiling": "the fill's texture repeats inside the fill (share of the fill that copies another part of it)",
    "flat_texture": "the fill is smoother than the skin around it (fine-detail contrast, fill over ring)",
}


def section(f: CardFacts) -> str:
    a = f.artefacts
    if not a:
        return ""
    rows = ["| detector | what it finds | flagged when | healthy images flagged | ids |", "|---|---|---|---:|---|"]
    for name, d in a["detectors"].items():
        ids = d["flagged"]
        shown = ", ".join(f"`{i}`" for i in ids[:SHOWN_IDS]) or "-"
        if len(ids) > SHOWN_IDS:
            shown += f", and {len(ids) - SHOWN_IDS} more (manifest.json)"
        when = f"{'<' if d['below'] else '>'} {d['threshold']:g}"
        rows.append(f"| `{name}` | {WHAT.get(name, name)} | {when} | {len(ids)} of {a['measured']} | {shown} |")
    any_flag = sorted({i for d in a["detectors"].values() for i in d["flagged"]})
    skipped = f" {a['not_measured']} could not be measured (their source photo is not in the build)." \
        if a["not_measured"] else ""
    return ("## Known artefacts of the healthy images\n\n"
            f"Every healthy image's filled region was checked at build time by automatic detectors, against "
            f"the photo it was healed from: {a['measured']} of {a['rows']} images measured.{skipped} "
            f"{len(any_flag)} image{'s' if len(any_flag) != 1 else ''} raised at least one flag and "
            f"{'was' if len(any_flag) == 1 else 'were'} published all the same (a flag is a measured suspicion "
            "for a reviewer, not a decision: `python -m builder review` sorts flagged images first). The detectors can miss what they were not built for, and can flag a fill that looks "
            "fine; the thresholds are set on the 39 Fitzpatrick17k photos of the fill benchmark.\n\n"
            + "\n".join(rows))
