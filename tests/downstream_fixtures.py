"""A DDI-layout source from DDI's real metadata table and real sDDI masks, with stand-in photos.

No DDI photo exists on this machine: each chosen row gets a seeded stand-in painted from its real
sDDI label map (skin of the row's tone group, a darker lesion, grey background), so lesion mapping
moves a visible lesion. Rows without a stand-in are rejected at ingest (`missing_image`), two get
corrupt files (`unreadable_image`): the holdout must not move for any of them.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from builder.core.store import encode_png

TONE_RGB = {12: (226, 190, 165), 34: (185, 135, 98), 56: (105, 70, 48)}


def reference_holdout(table: Path) -> set[str]:
    """PatchAlign24's own call, as its training script makes it: pandas table, sklearn split."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    df = pd.read_csv(table)
    _, test = train_test_split(df, test_size=0.2, random_state=12140420)
    return {Path(f).stem for f in test["DDI_file"]}


def stand_in_photo(mask: np.ndarray, tone: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(256, 449, size=2) // 8 * 8)  # DDI photos come in many sizes
    mask = mask[np.arange(h) * mask.shape[0] // h][:, np.arange(w) * mask.shape[1] // w]  # nearest resize
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    light = np.ones((h, w))
    for _ in range(4):  # large-scale shading differs per photo: distinct pHashes, as real photos have
        fy, fx = rng.uniform(-4, 4, 2)
        light += 0.12 * np.sin(6.3 * (fy * yy + fx * xx) + rng.random() * 6.3)
    img = np.asarray(TONE_RGB[tone], np.float64)[None, None] * light[..., None]
    img += rng.normal(0, 6, img.shape)
    img[mask == 1] *= 0.55 + 0.1 * rng.random()
    img[mask == 0] = 90 + rng.normal(0, 10, ((mask == 0).sum(), 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def write_ddi_source(shared_data: Path, folder: Path, n_train: int = 28, n_test: int = 10) -> dict:
    """A DDI-layout folder: the real `ddi_metadata.csv`, stand-ins for some rows with real masks.

    Returns the chosen stems by role: `train` and `test` (photos written, by the reference holdout),
    `corrupt` (one test and one train row with unreadable files), `masks` (a folder with their masks).
    """
    import polars as pl

    table = shared_data / "ddi_metadata.csv"
    holdout = reference_holdout(table)
    df = pl.read_csv(table, infer_schema=False)
    masks_dir = shared_data / "sddi_masks"
    with_mask = [r for r in df.iter_rows(named=True) if (masks_dir / f"{Path(r['DDI_file']).stem}.npy").is_file()]
    test = [r for r in with_mask if Path(r["DDI_file"]).stem in holdout][: n_test + 1]
    train = [r for r in with_mask if Path(r["DDI_file"]).stem not in holdout][: n_train + 1]
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(table, folder / "ddi_metadata.csv")
    masks = folder / "masks"
    masks.mkdir(exist_ok=True)
    corrupt = {Path(test[-1]["DDI_file"]).stem, Path(train[-1]["DDI_file"]).stem}
    for i, row in enumerate(test + train):
        stem = Path(row["DDI_file"]).stem
        shutil.copy(masks_dir / f"{stem}.npy", masks / f"{stem}.npy")
        if stem in corrupt:
            (folder / row["DDI_file"]).write_bytes(b"\x89PNG\r\n\x1a\n truncated")
            continue
        mask = np.load(masks_dir / f"{stem}.npy")
        (folder / row["DDI_file"]).write_bytes(encode_png(stand_in_photo(mask, int(row["skin_tone"]), i)))
    stems = lambda rows: {Path(r["DDI_file"]).stem for r in rows} - corrupt  # noqa: E731
    return {"train": stems(train), "test": stems(test), "corrupt": corrupt, "masks": masks,
            "holdout": holdout, "table": table}


def build_ddi_version(shared_data: Path, root: Path):
    """v1.1 built from the DDI-layout stand-in source (lesion budget cut to 40 for test time)."""
    import dataclasses

    from builder.build import BuildOptions, build
    from builder.core.config import load_config

    src = write_ddi_source(shared_data, root / "ddi")
    cfg = load_config("1.1")
    cfg = dataclasses.replace(cfg, lesion_map=dataclasses.replace(cfg.lesion_map, budget=40))
    result = build(cfg, BuildOptions(out=root / "out", source=root / "ddi", masks=src["masks"], workers=1,
                                     stand_in=True))
    return src, result, root


def write_two_sources(shared_data: Path, root: Path, fitz_rows: int = 39) -> dict:
    """`root/ddi` (a DDI-layout folder: 6 train and 3 test stand-ins, `write_ddi_source`) and `root/fitz` (the
    first `fitz_rows` Fitzpatrick17k photos with their masks); returns the DDI folder's roles."""
    from tests.curation.source.test_auto_masks import fitz_source

    ddi = write_ddi_source(shared_data, root / "ddi", n_train=6, n_test=3)
    fitz_source(shared_data, root / "fitz", fitz_rows, keep_masks_every=1)
    return ddi


def build_two_sources(shared_data: Path, root: Path):
    """v1.2 over both sources of `write_two_sources`, lesion maps across sources only (budget 24)."""
    import dataclasses

    from builder.build import BuildOptions, build
    from builder.core.config import load_config

    ddi = write_two_sources(shared_data, root)
    cfg = load_config("1.2")
    cfg = dataclasses.replace(cfg, lesion_map=dataclasses.replace(cfg.lesion_map, budget=24, cross_source="across"))
    result = build(cfg, BuildOptions(out=root / "out", source=(root / "ddi", root / "fitz"),
                                     masks=(ddi["masks"], None), workers=2))
    return ddi, result, root
