"""The paper's tables in `builder evaluate`: imbalance (S4), standard FID/KID/LPIPS (S6), augmentations (S8)."""
import numpy as np
import pytest

from builder.published.evaluate.balance import imbalance
from builder.published.evaluate.run import Item


def _item(n, kind, tone, sources):
    return Item(f"{kind}-{n:03d}", kind, "train", tone, 0, b"", source_ids=tuple(sources))


def test_imbalance_counts_rows_sources_and_the_ratio_by_hand():
    items = ([_item(n, "real", "light", [f"r{n}"]) for n in range(4)]
             + [_item(n, "real", "dark", [f"r{10 + n}"]) for n in range(5)]
             + [_item(n, "real", "medium", [f"r{20 + n}"]) for n in range(6)]
             # lesion maps: base + donor; two rows share base r0, one donor repeats
             + [_item(0, "lesion_mapped", "light", ["r0", "r10"]), _item(1, "lesion_mapped", "light", ["r0", "r11"]),
                _item(2, "lesion_mapped", "medium", ["r20", "r10"]), _item(3, "lesion_mapped", "dark", ["r12", "r10"]),
                _item(4, "lesion_mapped", "dark", ["r13", "r0"]), _item(5, "lesion_mapped", "dark", ["r14", "r1"])])
    res = imbalance(items)
    assert list(res) == ["real", "lesion_mapped"]
    assert [res["real"][t]["rows"] for t in ("light", "medium", "dark")] == [4, 6, 5]
    assert res["real"]["ratio"] == pytest.approx(6 / 4)
    lm = res["lesion_mapped"]
    assert [lm[t]["rows"] for t in ("light", "medium", "dark")] == [2, 1, 3]
    # light {r0, r10, r11}; medium {r20, r10}; dark {r12, r10, r13, r0, r14, r1}
    assert [lm[t]["sources"] for t in ("light", "medium", "dark")] == [3, 2, 6]
    assert lm["total"] == {"rows": 6, "sources": 8}  # r0 r1 r10 r11 r12 r13 r14 r20
    assert lm["ratio"] == pytest.approx(3.0)


def test_imbalance_ratio_is_undefined_when_a_tone_is_empty():
    res = imbalance([_item(0, "healthy", "light", ["a"]), _item(1, "healthy", "medium", ["b"])])
    assert res["healthy"]["dark"] == {"rows": 0, "sources": 0}
    assert res["healthy"]["ratio"] is None
