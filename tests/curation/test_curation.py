"""Curation end to end on real photos: planted duplicates and leaks, the leakage rule, the curate command."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from builder.core.schema import Generator, Record
from builder.core.store import StageStore, encode_png
from curation.leakage import apply_splits, remove_cross_split_duplicates


def _rec(sid, kind="healthy", sources=("ddi:a",), **kw):
    kw.setdefault("disease", "healthy" if kind == "healthy" else "melanoma")
    return Record(sample_id=sid, kind=kind, skin_tone="dark", malignant=kind != "healthy",
                  source_ids=list(sources), **kw)


def test_leakage_rule_by_source_base_donor_and_training_manifest():
    split_of = {"ddi:a": "train", "ddi:b": "test", "ddi:c": "validation"}
    real_b = _rec("real-b", "real", ["ddi:b"])
    h_a, h_b = _rec("h-a", sources=["ddi:a"]), _rec("h-b", sources=["ddi:b"])
    lm = _rec("lm-1", "lesion_mapped", ["ddi:a"], base_id="h-a", donor_id="real-b")  # donor only by id
    lm2 = _rec("lm-2", "lesion_mapped", ["ddi:a"], base_id="h-b", donor_id="ddi:c")  # base in test
    sem = _rec("sem-1", "semantic", ["ddi:a"], generator=Generator("diffusers", "sd", "rev", ("lora-mel",)))
    sem_ok = _rec("sem-2", "semantic", ["ddi:a"], generator=Generator("diffusers", "sd", "rev", ("lora-bcc",)))
    orphan = _rec("h-x", sources=["ddi:zzz"])
    recs, report, rejected = apply_splits([h_a, h_b, lm, lm2, sem, sem_ok, orphan], split_of, reference=[real_b],
                                          training_manifests={"lora-mel": ["ddi:a", "ddi:b"],
                                                              "lora-bcc": ["ddi:a", "ddi:c"]})
    got = {r.sample_id: r.split for r in recs}
    assert got == {"h-a": "train", "h-b": "test", "lm-1": "test", "lm-2": "test", "sem-1": "test",
                   "sem-2": "validation"}
    reasons = {r["sample_id"]: r["reason"] for r in report}
    assert reasons == {"lm-1": "source_in_test", "lm-2": "source_in_test", "sem-1": "source_in_test",
                       "sem-2": "source_in_validation"}
    assert next(r for r in report if r["sample_id"] == "sem-1")["source_ids"] == ["ddi:a", "ddi:b"]
    assert [(r.item_id, r.reason) for r in rejected] == [("h-x", "unknown_source")]


def test_cross_split_pairs_remove_the_less_held_out_side():
    recs = [_rec("s1", split="train"), _rec("s2", split="validation"), _rec("s3", split="train")]
    split = {"s1": "train", "s2": "validation", "s3": "train", "real-t": "test"}
    kept, report, rej = remove_cross_split_duplicates(recs, [("s1", "s2", 3), ("real-t", "s3", 0)], split)
    assert [r.sample_id for r in kept] == ["s2"]
    assert {(r.item_id, r.reason) for r in rej} == {("s1", "near_duplicate_of_validation"),
                                                    ("s3", "near_duplicate_of_test")}
    assert {r["dup_of"] for r in report} == {"s2", "real-t"}


# -- the command, on a crafted DDI-layout source made of real photos ---------------------------
def _jpeg_roundtrip(rgb, quality=85):
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("curate")
    photos = [np.asarray(Image.open(p).convert("RGB").resize((320, 256)))
              for p in sorted((shared_data / "fitz17k_lesions" / "images").iterdir())[:10]]
    src = root / "ddi"
    src.mkdir()
    # 000001-3: one photo three times (itself, a JPEG near copy, an exact copy); 4-12: distinct photos.
    imgs = [photos[0], _jpeg_roundtrip(photos[0]), photos[0]] + photos[1:10]
    rows = [",DDI_ID,DDI_file,skin_tone,malignant,disease"]
    for i, rgb in enumerate(imgs):
        (src / f"{i + 1:06d}.png").write_bytes(encode_png(rgb, compress_level=1 + i % 3))
        rows.append(f"{i},{i + 1},{i + 1:06d}.png,{(12, 34, 56)[i % 3]},{'TRUE' if i % 2 else 'FALSE'},"
                    f"{'melanoma' if i % 2 else 'melanocytic-nevi'}")
    (src / "ddi_metadata.csv").write_text("\n".join(rows) + "\n")
    (root / "test_ids.txt").write_text("ddi:000004\nddi:000005\n")
    mirrored = np.ascontiguousarray(photos[6][:, ::-1])
    base = np.ascontiguousarray(photos[9][::-1, ::-1])
    with_lesion = base.copy()
    with_lesion[100:116, 150:166] = (90, 40, 30)  # a pasted lesion: still a near copy of its base
    other_lesion = base.copy()
    other_lesion[180:194, 60:74] = (60, 30, 25)  # another lesion on the same base: a variant, not a copy
    sem = np.ascontiguousarray(photos[8][:, ::-1])
    healthy = StageStore(root / "healthy")
    stores = {"healthy": healthy, "lesion_mapped": StageStore(root / "lm"), "semantic": StageStore(root / "sem")}
    planted = {  # sample id -> (store, pixels, record fields)
        "healthy-01": ("healthy", mirrored, dict(sources=["ddi:000006"])),
        "healthy-02": ("healthy", mirrored, dict(sources=["ddi:000006"])),            # exact copy
        "healthy-03": ("healthy", _jpeg_roundtrip(photos[1]), dict(sources=["ddi:000006"])),  # ~ test real 4
        "lesion_mapped-01": ("lesion_mapped", photos[7][::-1].copy(),
                             dict(kind="lesion_mapped", sources=["ddi:000006"], base_id="healthy-01",
                                  donor_id="ddi:000004")),
        "healthy-04": ("healthy", base, dict(sources=["ddi:000008"])),
        "lesion_mapped-02": ("lesion_mapped", with_lesion,
                             dict(kind="lesion_mapped", sources=["ddi:000008", "ddi:000005"],
                                  base_id="healthy-04", donor_id="ddi:000005")),
        "lesion_mapped-03": ("lesion_mapped", other_lesion,
                             dict(kind="lesion_mapped", sources=["ddi:000008", "ddi:000005"],
                                  base_id="healthy-04", donor_id="ddi:000005")),
        "semantic-01": ("semantic", sem, dict(kind="semantic", sources=["ddi:000007"],
                                              generator=Generator("diffusers", "sd", "r", ("lora-mel",)))),
        "semantic-02": ("semantic", _jpeg_roundtrip(sem), dict(kind="semantic", sources=["ddi:000007"],
                        generator=Generator("diffusers", "sd", "r", ("lora-mel",)))),  # a look-alike
    }
    by_store: dict[str, list] = {k: [] for k in stores}
    for sid, (store, rgb, kw) in planted.items():
        sources = kw.pop("sources")
        rec = _rec(sid, kw.pop("kind", "healthy"), sources, image_path=f"images/{sid}.png", **kw)
        stores[store].put_image(sid, encode_png(rgb, compress_level=1 if sid.endswith("02") else 6))
        by_store[store].append(rec)
    for name, store in stores.items():
        store.finish_shard("0", by_store[name], [])
    (root / "manifest.json").write_text(json.dumps({"model": "lora-mel", "source_ids": ["ddi:000007", "ddi:000005"]}))
    out = root / "out"
    cmd = [sys.executable, "-m", "builder", "-q", "curate", "--source", str(src), "--out", str(out),
           "--test-ids", str(root / "test_ids.txt"), "--training-manifest", str(root / "manifest.json"),
           "--workers", "2"] + [f"--synthetic={k}={v.root}" for k, v in stores.items()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[2])
    assert proc.returncode == 0, proc.stderr
    return out, proc.stdout


def test_real_duplicates_share_a_split_and_one_copy_stays(workspace):
    out, _ = workspace
    splits = dict(pl.read_csv(out / "splits.csv").iter_rows())
    assert len({splits["ddi:000001"], splits["ddi:000002"], splits["ddi:000003"]}) == 1
    assert {k for k, v in splits.items() if v == "test"} == {"ddi:000004", "ddi:000005"}
    real = {r.sample_id: r.source_ids[0] for r in StageStore(out / "real").records()}
    dups = pl.read_csv(out / "duplicates.csv").filter(pl.col("scope") == "real")
    assert sorted(real[s] for s in dups["sample_id"]) != [] and len(dups) == 2
    assert {real[s] for s in dups["sample_id"]} | {real[dups["dup_of"][0]]} == {"ddi:000001", "ddi:000002",
                                                                               "ddi:000003"}
    assert dups["dup_of"].n_unique() == 1 and set(dups["kind"]) == {"exact", "near"}


def test_planted_leaks_and_synthetic_duplicates(workspace):
    out, stdout = workspace
    recs = {json.loads(line)["sample_id"]: json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()}
    assert recs["lesion_mapped-01"]["split"] == "test"  # donor is a test image
    assert recs["semantic-01"]["split"] == "test"  # its LoRA saw ddi:000005
    assert "healthy-03" not in recs  # a near copy of test image 4 cannot stay in train/validation
    assert len({"healthy-01", "healthy-02"} & set(recs)) == 1
    rej = pl.read_csv(out / "rejections.csv")
    curate = dict(zip(rej.filter(pl.col("stage") == "curate")["item_id"], rej.filter(pl.col("stage") == "curate")["reason"]))
    assert curate["healthy-03"] == "near_duplicate_of_test"
    assert "exact_duplicate" in {curate.get("healthy-01"), curate.get("healthy-02")}
    report = pl.read_csv(out / "leakage_report.csv")
    assert set(zip(report["sample_id"], report["reason"])) >= {("lesion_mapped-01", "source_in_test"),
                                                                ("semantic-01", "source_in_test"),
                                                                ("healthy-03", "near_duplicate_of_test")}
    summary = json.loads((out / "curation.json").read_text())
    for step in ("ingest", "real_dedup", "synthetic"):
        s = summary[step]
        assert s["in"] == s["kept"] + s["rejected"], step
    rules = summary["synthetic"].pop("rows_by_rule")  # strict (applied) and the paper's rule, counted
    assert rules["strict"] == {s: sum(r["split"] == s for r in recs.values() if r["kind"] != "real")
                               for s in ("train", "validation", "test")}
    assert sum(rules["paper"].values()) == sum(rules["strict"].values())
    assert rules["paper"]["test"] <= rules["strict"]["test"]  # the paper's rule holds out less, never more
    assert summary["synthetic"].pop("leakage_rule") == "strict"  # the rule applied (curation.leakage_rule)
    assert summary["synthetic"] == {"in": 9, "kept": 6, "rejected": 3, "cross_split_pairs_shared_lineage": 2,
                                    "by_reason": {"exact_duplicate": 1, "near_duplicate": 1,
                                                  "near_duplicate_of_test": 1}}
    assert "lesion_mapped-03" in recs and len({"semantic-01", "semantic-02"} & set(recs)) == 1
    # A lesion-mapped image in test (test donor) looks like its base; the base stays in its split.
    assert recs["lesion_mapped-02"]["split"] == "test" and recs["healthy-04"]["split"] in ("train", "validation")
    assert "real dedup in=12 kept=10 rejected=2" in stdout


def test_rerun_is_identical(workspace, tmp_path):
    out, _ = workspace
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != "curation.json"}
    src = out.parent / "ddi"
    cmd = [sys.executable, "-m", "builder", "-q", "curate", "--source", str(src), "--out", str(tmp_path / "o"),
           "--test-ids", str(out.parent / "test_ids.txt"), "--training-manifest", str(out.parent / "manifest.json"),
           "--workers", "1"] + [f"--synthetic={k}={out.parent / d}" for k, d in
                                (("healthy", "healthy"), ("lesion_mapped", "lm"), ("semantic", "sem"))]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[2])
    assert proc.returncode == 0, proc.stderr
    after = {p.name: p.read_bytes() for p in (tmp_path / "o").iterdir() if p.is_file() and p.name != "curation.json"}
    assert after.keys() == before.keys()
    for name in before:  # rejections.csv names paths; the rest is path-free
        if name != "rejections.csv":
            assert after[name] == before[name], name


def test_curate_help_is_fast_and_bad_synthetic_named():
    root = Path(__file__).parents[2]
    proc = subprocess.run([sys.executable, "-m", "builder", "curate", "--help"], capture_output=True, text=True,
                          cwd=root, timeout=60)
    assert proc.returncode == 0 and "--test-ids" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "builder", "curate", "--source", ".", "--out", "/tmp/x",
                           "--synthetic", "bogus=/nope"], capture_output=True, text=True, cwd=root, timeout=60)
    assert proc.returncode == 2 and "--synthetic 'bogus=/nope'" in proc.stderr


def test_bad_threshold_fails_before_work(tmp_path):
    import dataclasses

    from builder.core.config import CurationConfig
    from builder.core.errors import ConfigError
    from curation.curate_run import CurateOptions, curate_source

    cfg = dataclasses.replace(CurationConfig(), phash_hamming=40)
    with pytest.raises(ConfigError, match="phash_hamming=40"):
        curate_source(cfg, CurateOptions(source=tmp_path, out=tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_curate_an_ingested_real_store(workspace, tmp_path):
    out, _ = workspace
    root = Path(__file__).parents[2]
    cmd = [sys.executable, "-m", "builder", "-q", "curate", "--real", str(out / "real"), "--out", str(tmp_path),
           "--test-ids", str(out.parent / "test_ids.txt")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "splits.csv").read_bytes() == (out / "splits.csv").read_bytes()
    assert not (tmp_path / "real").exists()
    proc = subprocess.run(cmd[:5] + ["--real", str(tmp_path), "--out", str(tmp_path / "x")],
                          capture_output=True, text=True, cwd=root, timeout=300)
    assert proc.returncode == 2 and "no finished ingest there" in proc.stderr
