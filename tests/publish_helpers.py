"""Small built versions for the publishing tests, made from the real Fitzpatrick17k photos in shared data.

`make_store` turns the 39 real photos (downscaled) into a stage store of healthy, lesion-mapped and
semantic records with source-level splits; `build_version` publishes it with the toolkit's own
shards, card and manifest writers. `plant_leak` moves a test-derived row into train. The session's
`fitz_v11` fixture holds `make_store` + `build_version` of 20 photos; `copy_published` copies it for a
test that writes.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from builder.core.schema import (MASK_HEALED, MASK_LESION, Generator, Record, digest, fitzpatrick_to_tone,
                                 make_sample_id)
from builder.core.store import StageStore, decode_rgb, encode_png

SIZE = 64


def _load(shared_data: Path, row: dict) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    root = shared_data / "fitz17k_lesions"
    with Image.open(root / row["image_file"]) as im:
        rgb = np.asarray(im.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR))
    with Image.open(root / row["mask_selected_lesion"]) as m:
        mask = np.asarray(m.convert("L").resize((SIZE, SIZE), Image.NEAREST)) > 127
    return rgb, mask


def _split(i: int) -> str:
    return "test" if i % 5 == 0 else ("validation" if i % 10 == 1 else "train")


def make_store(shared_data: Path, root: Path, limit: int = 20, source: str = "fitz17k") -> StageStore:
    """Records of every synthetic kind from the first `limit` real photos; splits fixed per source.

    The photos themselves go to a real store at `real_store(store)`; `source` is the id prefix
    (`ddi` gives a DDI-named build with the same stand-in photos)."""
    store = StageStore(root)
    meta = list(csv.DictReader(open(shared_data / "fitz17k_lesions" / "metadata.csv")))[:limit]
    reals = []
    for i, row in enumerate(meta):
        rgb, mask = _load(shared_data, row)
        fitz = int(row["fitzpatrick_scale"]) if row["fitzpatrick_scale"] in "123456" else 3
        reals.append(dict(src=f"{source}:{row['md5hash']}", rgb=rgb, mask=mask, split=_split(i), fitz=fitz,
                          disease=row["label"], malignant=row["three_partition_label"] == "malignant"))
    _real_store(store, reals)
    records = [_healthy(store, r) for r in reals]
    for i, (base, rec) in enumerate(zip(reals, list(records))):
        donors = [d for d in reals if d["split"] == base["split"] and d is not base]
        if donors:
            records.append(_lesion_mapped(store, base, rec, donors[i % len(donors)]))
    train_src = sorted(r["src"] for r in reals if r["split"] == "train")
    records += [_semantic(store, k, train_src, tone) for k, tone in enumerate(("light", "medium", "dark"))]
    store.finish_shard("00000", records, [])
    return store


def real_store(store: StageStore) -> StageStore:
    """The store of the real photos behind `store` (made by `make_store`)."""
    return StageStore(store.root / "real")


def _real_store(store: StageStore, reals: list[dict]) -> None:
    real = real_store(store)
    records = []
    for r in reals:
        sid, path = _put(real, "real", r["rgb"], {"source_id": r["src"]})
        records.append(Record(sample_id=sid, kind="real", skin_tone=fitzpatrick_to_tone(r["fitz"]),
                              malignant=r["malignant"], disease=r["disease"], source_ids=[r["src"]],
                              image_path=path, fitzpatrick=r["fitz"]))
    real.finish_shard("00000", records, [])


def _put(store: StageStore, kind: str, rgb: np.ndarray, lineage: dict) -> tuple[str, str]:
    png = encode_png(rgb)
    sid = make_sample_id(kind, digest(png), lineage)
    return sid, store.put_image(sid, png)


def _healthy(store: StageStore, r: dict) -> Record:
    rgb = r["rgb"].copy()
    rgb[r["mask"]] = np.median(r["rgb"][~r["mask"]], axis=0).astype(np.uint8) if (~r["mask"]).any() else 128
    sid, path = _put(store, "healthy", rgb, {"source": r["src"]})
    mask_path = store.put_segmentation(sid, np.where(r["mask"], MASK_HEALED, 0))  # the healed region: its lesion
    return Record(sample_id=sid, kind="healthy", skin_tone=fitzpatrick_to_tone(r["fitz"]), malignant=False,
                  disease="healthy", source_ids=[r["src"]], image_path=path, split=r["split"],
                  fitzpatrick=r["fitz"], prompt=None, seed=0,
                  generator=Generator("opencv"), params={"dilate_px": 3}, mask_path=mask_path)


def _lesion_mapped(store: StageStore, base: dict, base_rec: Record, donor: dict) -> Record:
    rgb = decode_rgb(store.image_path(base_rec.sample_id).read_bytes()).copy()
    rgb[donor["mask"]] = donor["rgb"][donor["mask"]]
    sid, path = _put(store, "lesion_mapped", rgb, {"base": base_rec.sample_id, "donor": donor["src"]})
    mask = np.where(base["mask"], MASK_HEALED, 0)
    mask[donor["mask"]] = MASK_LESION  # the donor's lesion, pasted where it lay
    mask_path = store.put_segmentation(sid, mask)
    return Record(sample_id=sid, kind="lesion_mapped", skin_tone=base_rec.skin_tone, malignant=donor["malignant"],
                  disease=donor["disease"], source_ids=sorted({base["src"], donor["src"]}), image_path=path,
                  split=base["split"], fitzpatrick=base["fitz"], base_id=base_rec.sample_id,
                  donor_id=donor["src"], seed=1, generator=Generator("lesion_map"), params={"pad": 10},
                  mask_path=mask_path)


def _semantic(store: StageStore, k: int, sources: list[str], tone: str) -> Record:
    rgb = np.random.default_rng(k).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
    sid, path = _put(store, "semantic", rgb, {"k": k})
    return Record(sample_id=sid, kind="semantic", skin_tone=tone, malignant=k % 2 == 0, disease="melanoma",
                  source_ids=sources, image_path=path, split="train", seed=k,
                  prompt=f"An image of <melanoma-class> on the skin of a {tone}-skinned individual",
                  generator=Generator("diffusers", "tiny/sd", "0" * 40, ("ti.safetensors", "lora.safetensors")))


def plant_leak(store: StageStore) -> str:
    """Move one lesion-mapped image built on a test base into train (a leak); returns its sample_id."""
    records = store.records()
    victim = next(r for r in records if r.kind == "lesion_mapped" and r.split == "test")
    victim.split = "train"
    (store.root / "records" / "00000.jsonl").unlink()
    store.finish_shard("00000", records, [])
    return victim.sample_id


def plant_near_duplicate(store: StageStore, exact: bool = False) -> str:
    """Add a train row whose image is a test image (byte copy, or with faint noise); returns its id."""
    records = store.records()
    test = next(r for r in records if r.kind == "healthy" and r.split == "test")
    rgb = decode_rgb(store.read_image_bytes(test)).astype(np.int16)
    if not exact:
        rgb += np.random.default_rng(0).integers(-2, 3, rgb.shape)
    png = store.read_image_bytes(test) if exact else encode_png(np.clip(rgb, 0, 255).astype(np.uint8))
    sid = make_sample_id("semantic", digest(png), {"copy_of": test.sample_id, "exact": exact})
    path = store.put_image(sid, png)
    records.append(Record(sample_id=sid, kind="semantic", skin_tone=test.skin_tone, malignant=False,
                          disease="melanoma", source_ids=["fitz17k:unrelated"], image_path=path,
                          split="train", seed=7, generator=Generator("diffusers", "tiny/sd")))
    (store.root / "records" / "00000.jsonl").unlink()
    store.finish_shard("00000", records, [])
    return sid


def copy_published(published: tuple[StageStore, Path], dest: Path) -> tuple[StageStore, Path]:
    """A writable copy, under `dest`, of a (store, version folder) pair such as the `fitz_v11` fixture:
    the store (with its real store) and the version, as (store, version folder)."""
    import shutil

    store, folder = published
    shutil.copytree(store.root, dest / "store")
    shutil.copytree(folder, dest / "out" / folder.name)
    return StageStore(dest / "store"), dest / "out" / folder.name


def build_version(store: StageStore, out: Path, version: str = "1.1", overwrite: bool = False, **publish) -> Path:
    """Publish `store` as `<out>/<version>` with the build's own publish step (shards, card, manifest)."""
    import dataclasses

    from builder.build.publish import publish as publish_version
    from builder.core.config import load_config
    from builder.core.schema import KINDS

    cfg = load_config("1.1")
    cfg = dataclasses.replace(cfg, version=version, publish=dataclasses.replace(cfg.publish, **publish))
    stages = [{"stage": "fixture", "done": len(store.records()), "rejected": {}}]
    stores = {k: store for k in KINDS} | {"real": real_store(store)}
    publish_version(out / version, cfg, store.records(), stores, stages, overwrite=overwrite, refuse_leaks=False)
    return out / version
