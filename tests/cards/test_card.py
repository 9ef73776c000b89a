"""The card and croissant.json say what was built: source, licence by source, measured source pixels, generators."""
from __future__ import annotations

import dataclasses
import json
import re
import statistics

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from builder.core.backends import card_entries
from builder.core.config import load_config
from builder.core.schema import Generator
from builder.core.store import decode_rgb
from cards.card import SIZE_CATEGORIES, card_facts, card_yaml, size_category, tags
from tests.publish_helpers import build_version, make_store, real_store


def _front(folder) -> dict:
    return yaml.safe_load((folder / "README.md").read_text().split("---", 2)[1])


@pytest.fixture(scope="module")
def fitz(shared_data, tmp_path_factory):
    store = make_store(shared_data, tmp_path_factory.mktemp("fitz"), limit=12)
    return store, build_version(store, tmp_path_factory.mktemp("fitz-out"))


@pytest.fixture(scope="module")
def ddi(shared_data, tmp_path_factory):
    store = make_store(shared_data, tmp_path_factory.mktemp("ddi"), limit=12, source="ddi")
    return store, build_version(store, tmp_path_factory.mktemp("ddi-out"))


def test_fitzpatrick17k_gets_its_licence_and_attribution_and_no_gate(fitz):
    _, built = fitz
    front, card = _front(built), (built / "README.md").read_text()
    assert front["license"] == "cc-by-nc-sa-3.0" and "license_link" not in front
    assert not any(k.startswith("extra_gated") for k in front)
    assert front["source_datasets"] == ["extended|fitzpatrick17k"]
    terms = (built / "LICENSE.md").read_text()
    for needle in ("Fitzpatrick17k", "Groh", "CC BY-NC-SA 3.0", "creativecommons.org/licenses/by-nc-sa/3.0",
                   "same licence", "Changes made"):
        assert needle in terms and needle in card, needle
    assert "DDI" not in terms and "Stanford" not in card
    assert "@inproceedings{groh2021fitzpatrick" in card and "daneshjou" not in card


def test_ddi_gets_research_terms_gated_access_and_license_md(ddi):
    _, built = ddi
    front, card = _front(built), (built / "README.md").read_text()
    assert front["license"] == "other" and front["license_link"] == "LICENSE.md"
    assert front["license_name"] == "ddi-terms"
    assert "DDI" in front["extra_gated_prompt"]
    fields = front["extra_gated_fields"]
    assert "checkbox" in fields.values() and any("non-commercial" in k for k in fields)
    assert front["source_datasets"] == ["extended|ddi", "extended|sddi"]
    terms = (built / "LICENSE.md").read_text()
    assert "research-use terms" in terms and "non-commercial research" in terms
    assert "Access is gated on the Hub" in card and "Stanford Diverse Dermatology Images" in card


def test_card_states_the_measured_source_pixels(fitz):
    """The card's figures are the published images' own pixels against their source photos."""
    store, built = fitz
    real = {r.source_ids[0]: decode_rgb(real_store(store).read_image_bytes(r)) for r in real_store(store).records()}
    shares = []
    for path in sorted(built.glob("data/healthy/*.parquet")):
        t = pq.read_table(path, columns=["image", "source_ids"]).to_pylist()
        for row in t:
            rgb = decode_rgb(row["image"]["bytes"])
            shares.append(float((rgb == real[row["source_ids"][0]]).all(axis=2).mean()))
    m = json.loads((built / "manifest.json").read_text())["source_pixels"]
    assert m["healthy"]["measured"] == m["healthy"]["rows"] == len(shares)
    assert m["healthy"]["identical"]["median"] == round(statistics.median(shares), 4)
    assert m["healthy"]["identical"]["min"] == round(min(shares), 4) and 0.2 < min(shares) < max(shares) < 1
    lm = m["lesion_mapped"]
    assert lm["measured"] == lm["rows"] > 0 and 0 < lm["donor"]["min"] <= lm["donor"]["max"] < 1
    card = (built / "README.md").read_text()
    med = round(100 * statistics.median(shares))
    assert f"**healthy**: a median {med}% of each image's pixels" in card
    assert "No original" not in card and "No source photo is published as a file of its own" in card


def test_demo_source_is_named_and_carries_the_toolkit_licence(demo_v11):
    built = demo_v11.out_dir
    front, card = _front(built), (built / "README.md").read_text()
    assert front["license"] == "apache-2.0" and front["source_datasets"] == ["original"]
    assert "demo" in front["tags"] and not any(k.startswith("extra_gated") for k in front)
    assert "the toolkit's embedded demo source" in card and "No patient and no real photo" in card
    assert "biopsy" not in card.lower()
    assert "Apache License 2.0" in (built / "LICENSE.md").read_text()


def test_tags_tasks_and_prompts_only_for_generators_that_ran(fitz):
    store, _ = fitz
    cfg = load_config("1.1")
    no_diffusion = [r for r in store.records() if r.kind != "semantic"]
    entries = card_entries(cfg)  # what each registered backend says of itself (the build passes them)
    facts = card_facts(cfg, no_diffusion, generator_entries=entries)
    assert "stable-diffusion" not in tags(facts) and "diffusers" not in tags(facts)
    files = [{"config": "healthy", "split": "train", "rows": len(no_diffusion), "bytes": 1}]
    data = card_yaml(files, facts).to_dict()
    assert data["task_categories"] == ["image-classification"]
    assert data["task_ids"] == ["multi-class-image-classification"]
    from cards.card import prose

    text = prose(facts)
    assert "Healthy: CPU `quilt` fill" in text and "no diffusion model and no prompt" in text  # 1.1's stand-in
    assert cfg.healthy.prompt not in text and "Semantic:" not in text
    assert "| healthy | opencv |" in text and "| semantic |" not in text
    sd = [dataclasses.replace(r, generator=Generator("diffusers", "stabilityai/stable-diffusion-2-1-base", "5ede",
                                                     ("ti.safetensors",)))
          for r in store.records() if r.kind == "semantic"]
    facts = card_facts(cfg, no_diffusion + sd, generator_entries=entries)
    assert {"stable-diffusion", "diffusers", "textual-inversion", "lora"} <= set(tags(facts))
    assert "Semantic: `stabilityai/stable-diffusion-2-1-base` at `5ede`" in prose(facts)


@pytest.mark.parametrize("n, name", [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (99_999_999, "10M<n<100M"),
                                     (100_000_000, "100M<n<1B"), (10**9, "1B<n<10B"), (10**11 - 1, "10B<n<100B"),
                                     (10**12 - 1, "100B<n<1T"), (10**12, "n>1T")])
def test_size_categories_at_boundaries(n, name):
    assert size_category(n) == name


def test_size_categories_are_the_hubs_list():
    from huggingface_hub import DatasetCardData

    doc = DatasetCardData.__doc__
    options = re.findall(r"'([^']+)'", doc[doc.index("size_categories"):].split("source_datasets")[0])
    assert [n for _, n in SIZE_CATEGORIES] + ["n>1T", "other"] == options


def test_croissant_1_1_has_rai_fields_and_lineage_columns(fitz):
    import mlcroissant as mlc

    store, built = fitz
    raw = json.loads((built / "croissant.json").read_text())
    assert raw["conformsTo"] == ["http://mlcommons.org/croissant/1.1", "http://mlcommons.org/croissant/RAI/1.0"]
    assert raw["license"] == "https://creativecommons.org/licenses/by-nc-sa/3.0/"
    ds = mlc.Dataset(jsonld=str(built / "croissant.json"))
    meta = ds.metadata
    assert "DermaAmin" in meta.data_collection and meta.data_biases and meta.data_limitations
    assert meta.personal_sensitive_information and meta.data_use_cases
    assert any("a median" in p and "healthy" in p for p in meta.data_preprocessing_protocol)
    by_id = {r.sample_id: r for r in store.records()}
    rows = list(ds.records("lesion_mapped"))
    assert len(rows) == sum(r.kind == "lesion_mapped" for r in by_id.values())
    for row in rows:
        rec = by_id[row["lesion_mapped/sample_id"].decode()]
        assert [s.decode() for s in row["lesion_mapped/source_ids"]] == rec.source_ids
        assert row["lesion_mapped/generator"]["lesion_mapped/generator/backend"] == b"lesion_map"
        assert len(row["lesion_mapped/auto_masks"]) == len(rec.auto_masks)  # hand masks here: empty
    sem = list(ds.records("semantic"))
    gen = sem[0]["semantic/generator"]
    assert gen["semantic/generator/model_id"] == b"tiny/sd"
    assert [a.decode() for a in gen["semantic/generator/adapters"]] == ["ti.safetensors", "lora.safetensors"]
    assert len(sem[0]["semantic/source_ids"]) > 1
    assert isinstance(np.asarray(sem[0]["semantic/image"]), np.ndarray)


def test_rows_without_a_comparable_photo_are_counted_not_guessed(fitz):
    from builder.core.schema import KINDS
    from builder.core.store import StageStore, encode_png
    from builder.build.source_pixels import measure_source_pixels
    from cards.card import prose

    store, _ = fitz
    records = [r for r in store.records() if r.kind == "healthy"]
    got = measure_source_pixels(records, {k: store for k in KINDS if k != "real"})
    assert got == {"healthy": {"rows": len(records), "measured": 0, "identical": None,
                               "not_measured": {"no_source_photo": len(records)}}}
    assert "no row could be compared with a source photo" in prose(card_facts(load_config("1.1"), records,
                                                                              pixels=got))
    small = StageStore(store.root.parent / "small-real")  # the same photos at another size
    reals = real_store(store).records()
    for r in reals:
        small.put_image(r.sample_id, encode_png(decode_rgb(real_store(store).read_image_bytes(r))[:32]))
    small.finish_shard("00000", reals, [])
    got = measure_source_pixels(records, {"real": small, "healthy": store})
    assert got["healthy"]["not_measured"] == {"size_differs": len(records)}


def test_mask_counts_read_the_typed_base_and_donor_sources():
    from builder.core.schema import AutoMask, Record
    from cards.text import mask_counts

    lm = Record(sample_id="lesion_mapped-0", kind="lesion_mapped", skin_tone="dark", malignant=True,
                disease="melanoma", source_ids=["ddi:1", "ddi:2"], auto_masks=(AutoMask("ddi:1", "cpu", "1", 0.9),),
                base_source_ids=("ddi:1",), donor_source_ids=("ddi:2",), params={"pad": 10})
    c = mask_counts([lm])
    assert (c["masks"], c["auto"], c["methods"]) == (2, 1, ["cpu 1"])
    assert (c["bases"], c["auto_bases"], c["donors"], c["auto_donors"]) == (1, 1, 1, 0)
