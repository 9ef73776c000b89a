"""The trainers' Fitzpatrick17k layout: what their Fitzpatrick17k scripts read, in their encodings.

Read from their code (aayushmanace/PatchAlign24 `train_PatchAlign_FitzPatrick_InDomain.py`,
`data_play_fitz.ipynb`; siyi-wind/FairDisCo `train_DisCo.py`, `data_play_fitz.ipynb`): the script
first reads `fitzpatrick17k_known_code.csv` (Fitzpatrick17k's table without unknown types, plus
`low` / `mid` / `high` = pandas category codes of `label` / `nine_partition_label` /
`three_partition_label`, `hasher` = `md5hash`, `REWT_weights`, `RESM_weights`), splits it, and its
`SkinDataset` reads `os.path.join(image_dir, hasher) + '.jpg'` with `skimage.io.imread`. It trains
on `high` (benign 0, malignant 1, non-neoplastic 2: alphabetical codes) and `fitzpatrick - 1` (the
6-way type head); its evaluation groups types as `(fitzpatrick - 1) // 2` for the random holdout.

Rows: real photos keep their Fitzpatrick type, label and partitions; a synthetic row takes the type
of the photo it was built on (the shards' `fitzpatrick` column) and its lesion's label, with the
partitions of that label in the user's table (else `malignant` / `benign` from its malignancy).
Rows without a type (built from a DDI-layout source) cannot be placed and are left out, counted.
Synthetic images are written as JPEG (quality 95, no chroma subsampling): their loader appends `.jpg`.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from builder.core.errors import ExportError
from builder.published.trainers import Edit

TABLE_FILE = "fitzpatrick17k_known_code.csv"
COLUMNS = ("md5hash", "fitzpatrick", "label", "nine_partition_label", "three_partition_label", "qc", "url",
           "low", "mid", "high", "hasher", "REWT_weights", "RESM_weights", "kind", "sample_id", "source_ids")
HIGH = {"benign": 0, "malignant": 1, "non-neoplastic": 2}  # category codes of three_partition_label

EDITS = {
    "patchalign": ("train_PatchAlign_FitzPatrick_InDomain.py", (
        Edit("`train_PatchAlign_FitzPatrick_InDomain.py` line 468", 'df = pd.read_csv("fitzpatrick17k_known_code.csv")',
             "df = pd.read_csv('{out}/fitzpatrick17k_known_code.csv')"),
        Edit("`train_PatchAlign_FitzPatrick_InDomain.py` lines 486-491 (the `random_holdout` branch, else)",
             "train, test, y_train, y_test = train_test_split(df, df['low'], test_size=0.2, random_state=205504, "
             "stratify=df['low'])",
             "train, test = pd.read_csv('{out}/train.csv'), pd.read_csv('{out}/test.csv')"),
        Edit("`train_PatchAlign_FitzPatrick_InDomain.py` line 383 (`custom_load`'s default)",
             "image_dir='~/Documents/MultiModal_Research/FairDisCo/fitzpatrick17k/data/finalfitz17k',",
             "image_dir='{out}/images',")),
        "python3 -u train_PatchAlign_FitzPatrick_InDomain.py 20 full fitzpatrick PATCHALIGN_FITZ_INDOMAIN"),
    "fairdisco": ("train_DisCo.py", (
        Edit("`train_DisCo.py` line 303", 'df = pd.read_csv("fitzpatrick17k_known_code.csv")',
             "df = pd.read_csv('{out}/fitzpatrick17k_known_code.csv')"),
        Edit("`train_DisCo.py` lines 320-325 (the `random_holdout` branch, else)",
             "train, test, y_train, y_test = train_test_split(df, df['low'], test_size=0.2, random_state=64, "
             "stratify=df['low'])",
             "train, test = pd.read_csv('{out}/train.csv'), pd.read_csv('{out}/test.csv')"),
        Edit("`train_DisCo.py` line 220 (`custom_load`'s default)",
             "image_dir='/bigdata/siyiplace/data/skin_lesion/fitzpatrick17k/data/finalfitz17k/',",
             "image_dir='{out}/images',")),
        "python -u train_DisCo.py 20 full fitzpatrick DisCo"),
}


def partitions_of(table: Path | None) -> dict[str, tuple[str, str]]:
    """label -> (nine_partition_label, three_partition_label) from the user's Fitzpatrick17k table."""
    if table is None:
        return {}
    import polars as pl

    df = pl.read_csv(table, infer_schema=False)
    if not {"label", "nine_partition_label", "three_partition_label"} <= set(df.columns):
        return {}
    return {(d["label"] or "").strip(): ((d["nine_partition_label"] or "").strip(),
                                          (d["three_partition_label"] or "").strip())
            for d in df.iter_rows(named=True)}


def to_fitz_rows(rows: list[dict], out: Path, partitions: dict) -> tuple[list[dict], Counter]:
    """The DDI-encoded export rows in the Fitzpatrick17k layout; synthetic PNGs re-encoded as `<hasher>.jpg`."""
    kept, left = [], Counter()
    for r in rows:
        fitz = r.get("_type")
        if fitz is None:
            left["no_fitzpatrick_type"] += 1
            _drop_image(out, r)
            continue
        label = r["disease"]
        nine, three = r.get("_nine") or "", r.get("_three") or ""
        if not three:
            nine, three = partitions.get(label, ("", "malignant" if r["malignant"] else "benign"))
        hasher = r["_md5"] if r["kind"] == "real" else r["sample_id"]
        _place_image(out, r, hasher)
        kept.append({**r, "md5hash": r.get("_md5", ""), "fitzpatrick": int(fitz), "label": label,
                     "nine_partition_label": nine, "three_partition_label": three, "qc": r.get("_qc", ""),
                     "url": r.get("_url", ""), "mid": 0, "high": HIGH[three], "hasher": hasher})
    return kept, left


def _drop_image(out: Path, r: dict) -> None:
    (out / "images" / r["hasher"]).unlink(missing_ok=True)


def _place_image(out: Path, r: dict, hasher: str) -> None:
    src, dst = out / "images" / r["hasher"], out / "images" / f"{hasher}.jpg"
    if r["kind"] == "real":
        target = src.resolve()
        src.unlink()
        if target.suffix.lower() in (".jpg", ".jpeg"):
            dst.symlink_to(target)  # the photo itself, linked
        else:
            _write_jpeg(target.read_bytes(), dst)
        return
    _write_jpeg(src.read_bytes(), dst)
    src.unlink()


def _write_jpeg(data: bytes, dst: Path) -> None:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.convert("RGB").save(dst, format="JPEG", quality=95, subsampling=0)


def add_codes(rows: list[dict], table: Path | None) -> None:
    """`low` / `mid`: category codes over the user's table's labels when given (their codes), else over
    the exported rows'; REWT / RESM weights per fitzpatrick x high cell (data_play_fitz.ipynb)."""
    import polars as pl

    labels = {r["label"] for r in rows}
    nines = {r["nine_partition_label"] for r in rows}
    if table is not None:
        df = pl.read_csv(table, infer_schema=False)
        labels |= {(v or "").strip() for v in df["label"].to_list()}
        if "nine_partition_label" in df.columns:
            nines |= {(v or "").strip() for v in df["nine_partition_label"].to_list()}
    low = {name: i for i, name in enumerate(sorted(labels))}
    mid = {name: i for i, name in enumerate(sorted(nines))}
    cells = Counter((r["fitzpatrick"], r["high"]) for r in rows)
    types, conditions = Counter(r["fitzpatrick"] for r in rows), Counter(r["high"] for r in rows)
    for r in rows:
        n = cells[(r["fitzpatrick"], r["high"])]
        r["low"], r["mid"] = low[r["label"]], mid[r["nine_partition_label"]]
        r["REWT_weights"] = types[r["fitzpatrick"]] * conditions[r["high"]] / (n * len(rows))
        r["RESM_weights"] = 1 / n


def check_types(rows: list[dict], folder: Path) -> None:
    if not rows:
        raise ExportError(f"{folder} has no row with a Fitzpatrick type (a DDI-layout build has tone groups "
                          "only): export it with the default --layout ddi")


def training_text(target: str, out: Path, *, holdout: str, include_healthy: bool) -> str:
    script, edits, run = EDITS[target]
    out = Path(out).resolve()
    steps = "\n".join(f"{i}. {e.where}: replace\n   `{e.original}`\n   by\n   `{e.template.format(out=out)}`"
                      for i, e in enumerate(edits, 1))
    healthy = ("Healthy-skin rows are included (`--include-healthy`): `label` `healthy`." if include_healthy
               else "Only lesion rows are exported; `--include-healthy` adds healthy-skin rows (`label` `healthy`).")
    return f"""# Training on this export with the trainer's Fitzpatrick17k script

Export folder: `{out}`. `{TABLE_FILE}` (train then test rows), `train.csv` and `test.csv` are in
the Fitzpatrick17k encodings of `data_play_fitz.ipynb`; every image is `{out}/images/<hasher>.jpg`.
Test: {holdout}. Synthetic images are JPEG (quality 95, no chroma subsampling); real photos are linked.

`{script}` first reads `{TABLE_FILE}` from its working directory, then splits it, then reads images
from `custom_load`'s default folder. Make these {len(edits)} edits (the split spans several lines there):

{steps}

then run `{run}` from the clone. It trains on `high` (benign 0, malignant 1, non-neoplastic 2) with
`fitzpatrick - 1` (types 1-6) as the skin-type target; its evaluation groups types as
`(fitzpatrick - 1) // 2` for the random holdout. A synthetic row carries the type of the photo it
was built on. {healthy}
"""
