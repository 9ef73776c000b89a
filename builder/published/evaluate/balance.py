"""The paper's imbalance table: rows per kind x skin tone, the distinct source photos behind each cell,
and the imbalance ratio (the largest tone count over the smallest) per kind.

Read from the version's rows alone (and the real photos' store): no model is involved.
"""
from __future__ import annotations

from builder.core.schema import SKIN_TONES


def imbalance(items) -> dict:
    """{kind: {tone: {"rows", "sources"}, "ratio"}} for every kind present in `items`.

    `sources` counts the distinct real photos named in the cell's rows' `source_ids` (a lesion-mapped row
    names its base and its donor, so one cell's sources can outnumber its rows' bases). The ratio is
    None when a tone has no rows (undefined, not infinite).
    """
    out: dict[str, dict] = {}
    for kind in sorted({i.kind for i in items}, key=_kind_order):
        cells = {}
        for tone in SKIN_TONES:
            rows = [i for i in items if i.kind == kind and i.tone == tone]
            cells[tone] = {"rows": len(rows), "sources": len({s for i in rows for s in i.source_ids})}
        counts = [cells[t]["rows"] for t in SKIN_TONES]
        cells["total"] = {"rows": sum(counts),
                          "sources": len({s for i in items if i.kind == kind for s in i.source_ids})}
        cells["ratio"] = round(max(counts) / min(counts), 4) if min(counts) > 0 else None
        out[kind] = cells
    return out


def _kind_order(kind: str) -> int:
    from builder.core.schema import KINDS

    return KINDS.index(kind) if kind in KINDS else len(KINDS)
