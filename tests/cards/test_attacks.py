"""Labels from the data land escaped: literal text in the card's tables, valid YAML in its front matter,
no escape sequence on the terminal; the toolkit's own card never fails its audit because of a label."""
from __future__ import annotations

import json

import pytest

from builder.cli import main
from builder.core.text import printable
from builder.core.text import md_text
from tests.publish_helpers import make_store, real_store

EVIL = "evil --- <script>alert(1)</script> | *x* [l](http://e) \x1b[31mred\n---\n# heading"


@pytest.fixture(scope="module")
def version(shared_data, tmp_path_factory):
    import dataclasses

    from builder.build.publish import publish
    from builder.core.config import load_config
    from builder.core.schema import KINDS

    root = tmp_path_factory.mktemp("labels")
    store = make_store(shared_data, root / "store", limit=10)
    records = store.records()
    for r in records:
        if r.kind == "lesion_mapped":
            r.disease = r.disease_raw = EVIL
    (store.root / "records" / "00000.jsonl").unlink()
    store.finish_shard("00000", records, [])
    cfg = dataclasses.replace(load_config("1.1-notebook"), version="9.9")  # a balanced plan: per-disease rows
    delivery = {"planned": 4, "delivered": 3, "placement": {"pad 10": 3},
                "cells": [{"disease": EVIL, "planned": 4, "delivered": 3}]}
    stages = [{"stage": "lesion_map", "done": 3, "rejected": {}, "delivery": delivery}]
    out = root / "build" / "9.9"
    publish(out, cfg, store.records(), {k: store for k in KINDS} | {"real": real_store(store)}, stages,
            refuse_leaks=False)
    return out


def test_labels_land_as_literal_text_in_the_card(version):
    import yaml
    from huggingface_hub.repocard import REGEX_YAML_BLOCK

    text = (version / "README.md").read_text()
    block = REGEX_YAML_BLOCK.search(text)
    meta = yaml.safe_load(block.group(2))
    names = next(f["dtype"]["class_label"]["names"] for f in meta["dataset_info"][0]["features"]
                 if f["name"] == "disease")
    assert EVIL in names.values() if isinstance(names, dict) else EVIL in names  # YAML keeps the label intact
    body = text[block.end():]
    assert "<script>" not in body and "\x1b" not in body and "\n---\n# heading" not in body
    assert f"| {md_text(EVIL)} | 3 / 4 |" in body


def test_the_toolkits_own_card_passes_its_audit(version, tmp_path, capsys):
    rc = main(["audit", str(version), "--report", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert json.loads((tmp_path / "r.json").read_text())["integrity"]["ok"]


def test_terminal_output_escapes_control_characters():
    assert printable(EVIL).count("\x1b") == 0 and "\\x1b[31m" in printable(EVIL) and "\n" not in printable(EVIL)
    assert md_text("a|b\nc") == "a\\|b c"
