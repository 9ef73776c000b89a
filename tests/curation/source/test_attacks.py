"""Adversarial source tables: work stays linear in the rows, bad bytes are one line naming the file."""
from __future__ import annotations

import sys

import numpy as np

from builder.core.store import encode_png
from curation.source import metadata
from curation.source.metadata import read_source_table


def _one_photo_table(folder, n: int):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "000001.png").write_bytes(encode_png(np.full((32, 32, 3), 128, np.uint8)))
    lines = ["DDI_ID,DDI_file,skin_tone,malignant,disease"]
    lines += [f"{i},000001.png,12,FALSE,melanoma-in-situ" for i in range(1, n + 1)]
    (folder / "ddi_metadata.csv").write_text("\n".join(lines) + "\n")
    return folder


def _calls_in_metadata(folder) -> int:
    """Python calls (generator steps included) made in metadata.py while reading the table: a count of
    work, the same on any machine (no clock)."""
    calls = 0

    def count(frame, event, arg):
        nonlocal calls
        if event == "call" and frame.f_code.co_filename == metadata.__file__:
            calls += 1

    sys.setprofile(count)
    try:
        table = read_source_table(folder)
    finally:
        sys.setprofile(None)
    assert len(table.rows) == 1 and {r.reason for r in table.rejections} == {"duplicate_id"}
    return calls


def test_rows_naming_one_photo_cost_linear_work(tmp_path):
    small = _calls_in_metadata(_one_photo_table(tmp_path / "a", 300))
    large = _calls_in_metadata(_one_photo_table(tmp_path / "b", 1200))
    assert large < 4.8 * small  # 4x the rows: linear work is ~4x, quadratic ~16x
