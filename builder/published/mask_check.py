"""A published row's `mask` checked against its row (the audit's integrity checks call it per row)."""
from __future__ import annotations

import io

from builder.core.schema import KINDS, MASK_LABELS, MASK_LESION, MASKED_KINDS


def mask_problem(row: dict, image: bytes) -> str | None:
    """What is wrong with a row's `mask` (None: nothing): only healthy and lesion-mapped rows carry one; a
    single-channel PNG of the image's size with values in MASK_LABELS; a lesion-mapped row's marks a lesion,
    a healthy row's none."""
    import numpy as np
    from PIL import Image

    cell, kind = row.get("mask"), KINDS[row["kind"]]
    if cell is None:
        return None
    if kind not in MASKED_KINDS:
        return f"a {kind} row carries a mask (only {' and '.join(MASKED_KINDS)} rows have one)"
    try:
        with Image.open(io.BytesIO(image)) as im:
            size = im.size
        with Image.open(io.BytesIO(cell["bytes"])) as m:
            mode, msize, values = m.mode, m.size, np.unique(np.asarray(m))
    except Exception as e:  # noqa: BLE001 (PIL raises many types for bytes that are not an image)
        return f"mask is not a decodable PNG ({str(e)[:120]})"
    if mode != "L" or msize != size:
        return f"mask is {mode} {msize[0]}x{msize[1]}, expected single-channel (L) {size[0]}x{size[1]} (the image's)"
    if values.size and values.max() >= len(MASK_LABELS):
        return f"mask values {values.tolist()} outside 0-{len(MASK_LABELS) - 1} {MASK_LABELS}"
    if (MASK_LESION in values) != (kind == "lesion_mapped"):
        return f"a {kind} row's mask {'has no' if kind == 'lesion_mapped' else 'has'} lesion pixels ({MASK_LESION})"
    return None
