"""Balance tables of an audited version: counts by split x kind x skin tone x malignancy, and by split x tone."""
from __future__ import annotations

import collections

from builder.core.schema import MALIGNANCY, SKIN_TONES


def balance_tables(rows: list, leaked: set[str]) -> dict:
    """Counts by split x kind x skin tone x malignancy, and by split x tone (the fairness view)."""
    cells = collections.Counter((r.split, r.kind, r.skin_tone, MALIGNANCY[int(r.malignant)]) for r in rows)
    tone = collections.Counter((r.split, r.skin_tone) for r in rows)
    return {"by_split_kind_tone_malignancy": [
                {"split": s, "kind": k, "skin_tone": t, "malignancy": m, "rows": n}
                for (s, k, t, m), n in sorted(cells.items())],
            "by_split_tone": [{"split": s, "skin_tone": t, "rows": n} for (s, t), n in sorted(tone.items())],
            "leaked_rows": len(leaked)}


def format_balance(balance: dict) -> str:
    """Plain-text table: split x tone rows, with the malignant share per cell."""
    cells = collections.defaultdict(lambda: [0, 0])
    for c in balance["by_split_kind_tone_malignancy"]:
        cell = cells[(c["split"], c["skin_tone"])]
        cell[0] += c["rows"]
        cell[1] += c["rows"] if c["malignancy"] == "malignant" else 0
    splits = sorted({s for s, _ in cells})
    lines = [f"{'split':<12}" + "".join(f"{t:>20}" for t in SKIN_TONES)]
    for s in splits:
        lines.append(f"{s:<12}" + "".join(
            f"{cells[(s, t)][0]:>10} ({cells[(s, t)][1]:>4} mal)" for t in SKIN_TONES))
    return "\n".join(lines)
