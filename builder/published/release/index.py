"""`import-release`: index a published cgDDI release by its file names, split it for a holdout, and
write the trainers' CSVs and a leakage report.

Every file gets one row of `release_index.csv` (`file,kind,base_id,donor_id,disease,donor_tone,split`
and `reason` for a name that says nothing). A lesion map's split follows the chosen rule over the
held-out DDI photos: `strict` (the toolkit's) makes it test when its base or its donor is held out,
`paper` (the paper's) when its donor is. The report counts what each rule keeps. The work streams:
names are listed, parsed and written one at a time; no image is read.
"""
from __future__ import annotations

import csv
import dataclasses
import json
from collections import Counter
from pathlib import Path

from builder.core.errors import ReleaseError
from builder.core.schema import DDI_TONE_TO_NAME, KINDS, SKIN_TONES, digest, make_sample_id
from builder.published.release.names import SOURCE, UNPARSED, Photo, disease_codec, parse_name

INDEX = "release_index.csv"
INDEX_COLUMNS = ("file", "kind", "base_id", "donor_id", "disease", "donor_tone", "split", "reason")
RULES = ("strict", "paper")
TARGETS = ("patchalign", "fairdisco")
EXAMPLES = 5


@dataclasses.dataclass(frozen=True)
class Holdout:
    """The held-out DDI photos (`ddi:<stem>`) and how they were chosen."""

    test_ids: frozenset[str]
    method: str  # patchalign24 or test_ids
    seed: int | None = None
    file: str | None = None

    def describe(self) -> dict:
        return {"method": self.method, "seed": self.seed, "file": self.file, "test_ids": len(self.test_ids)}


def read_photos(metadata: Path) -> dict[str, Photo]:
    """DDI's metadata table -> stem -> Photo, every row checked (a bad row names its line and value)."""
    from curation.source.metadata import load_disease_map, read_csv_strings

    if not Path(metadata).is_file():
        raise ReleaseError(f"--metadata {metadata} does not exist; pass DDI's ddi_metadata.csv")
    df = read_csv_strings(Path(metadata))
    mal = next((c for c in ("malignant", "malignancy(malig=1)") if c in df.columns), None)
    if mal is None or not {"DDI_ID", "DDI_file", "skin_tone", "disease"} <= set(df.columns):
        raise ReleaseError(f"{metadata}: expected DDI's columns DDI_ID, DDI_file, skin_tone, malignant, disease; "
                           f"found {df.columns}")
    dmap, photos = load_disease_map(), {}
    for line, d in enumerate(df.iter_rows(named=True), start=2):
        stem, tone, raw = Path((d["DDI_file"] or "").strip()).stem, (d["skin_tone"] or "").strip(), \
            (d["disease"] or "").strip()
        malignant = (d[mal] or "").strip().lower()
        if not stem or not tone.isdigit() or int(tone) not in DDI_TONE_TO_NAME or raw not in dmap \
                or malignant not in ("true", "false", "1", "0"):
            raise ReleaseError(f"{metadata} line {line}: {dict(d)} is not a valid DDI row (file, tone 12/34/56, "
                               "malignant True/False, a disease of the disease map); fix or remove it")
        photos[stem] = Photo(stem, (d["DDI_ID"] or "").strip(), int(tone), malignant in ("true", "1"), raw, dmap[raw])
    return photos


def holdout(metadata: Path, photos: dict[str, Photo], seed: int | None = None,
            test_ids_file: Path | None = None) -> Holdout:
    """PatchAlign24's holdout over the table in row order (its seed, or `seed`), or a test-ids file."""
    from curation.splits import PATCHALIGN_SEED, holdout_test_ids

    if test_ids_file is not None:
        from builder.core.splits_file import check_test_ids, read_test_ids

        ids = read_test_ids(test_ids_file)
        check_test_ids(ids, {f"{SOURCE}:{s}" for s in photos}, where=str(metadata), every=True,
                       hint="give ids of DDI photos as ddi:<file stem>, e.g. ddi:000001")
        return Holdout(frozenset(ids), "test_ids", file=Path(test_ids_file).name)
    seed = PATCHALIGN_SEED if seed is None else seed
    return Holdout(frozenset(holdout_test_ids(metadata, SOURCE, seed=seed)), "patchalign24", seed=seed)


def split_of(base_id: str, donor_id: str, test_ids: frozenset[str], rule: str) -> str:
    """A lesion map's split: strict = test if its base or donor is held out; paper = if its donor is."""
    if rule not in RULES:
        raise ReleaseError(f"--rule {rule!r}: expected one of {', '.join(RULES)}")
    held = donor_id in test_ids or (rule == "strict" and base_id in test_ids)
    return "test" if held else "train"


def write_index(files, out: Path, photos: dict[str, Photo], hold: Holdout, rule: str) -> dict:
    """Parse and write every name (one at a time); returns the leakage report's counts."""
    from builder.core.progress import progress

    codec = disease_codec()
    kinds, reasons, by_rule = Counter(), Counter(), {r: Counter() for r in RULES}
    examples: dict[str, list[str]] = {}
    differ = []
    with open(out / INDEX, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(INDEX_COLUMNS)
        for name in progress(files, desc="index release", total=len(files), unit="file"):
            p = parse_name(name, codec, photos)
            kinds[p.kind] += 1
            split = ""
            if p.kind == UNPARSED:
                reasons[p.code] += 1
                if len(examples.setdefault(p.code, [])) < EXAMPLES:
                    examples[p.code].append(name)
            else:
                splits = {r: split_of(p.base_id, p.donor_id, hold.test_ids, r) for r in RULES}
                for r, s in splits.items():
                    by_rule[r][s] += 1
                if splits["strict"] != splits["paper"] and len(differ) < EXAMPLES:
                    differ.append(name)
                split = splits[rule]
            w.writerow((p.file, p.kind, p.base_id, p.donor_id, p.disease, p.donor_tone, split, p.reason))
    return {"files": sum(kinds.values()), "by_kind": dict(sorted(kinds.items())),
            "unparsed": {k: {"files": n, "examples": examples[k]} for k, n in sorted(reasons.items())},
            "lesion_maps_by_rule": {r: dict(sorted(c.items())) for r, c in by_rule.items()},
            "rules_differ_examples": differ}


def iter_index(out: Path):
    """The index's rows, one at a time."""
    with open(out / INDEX, newline="") as f:
        yield from csv.DictReader(f)


def release_sample_id(file: str) -> str:
    """A release file's sample id: from its name alone (stable across revisions holding the same name)."""
    return make_sample_id("lesion_mapped", digest(file.encode()), {"release_file": file})


def trainer_rows(out: Path, photos: dict[str, Photo], test_ids: frozenset[str]):
    """(row in export's encodings, split): train lesion maps, then every DDI photo of the table
    (held out: test; else train). Test lesion maps join neither CSV: test is real photos only."""
    from builder.published.export import _csv_row

    for row in iter_index(out):
        if row["kind"] == "lesion_mapped" and row["split"] == "train":
            base, donor = photos[row["base_id"].split(":", 1)[1]], photos[row["donor_id"].split(":", 1)[1]]
            shard_row = {"sample_id": release_sample_id(row["file"]), "kind": KINDS.index("lesion_mapped"),
                         "skin_tone": SKIN_TONES.index(DDI_TONE_TO_NAME[base.tone]), "malignant": donor.malignant,
                         "disease": donor.disease, "disease_raw": donor.disease_raw,
                         "source_ids": [row["base_id"], row["donor_id"]]}
            yield _csv_row(shard_row, row["file"], "train"), "train"
    for stem in sorted(photos):
        p, sid = photos[stem], f"{SOURCE}:{stem}"
        split = "test" if sid in test_ids else "train"
        shard_row = {"sample_id": "", "kind": KINDS.index("real"),
                     "skin_tone": SKIN_TONES.index(DDI_TONE_TO_NAME[p.tone]), "malignant": p.malignant,
                     "disease": p.disease, "disease_raw": p.disease_raw, "source_ids": [sid]}
        r = _csv_row(shard_row, f"{stem}.png", split)
        r["DDI_ID"] = p.ddi_id
        yield r, split


def write_trainer_csvs(out: Path, photos: dict[str, Photo], hold: Holdout) -> dict:
    """`<target>/train.csv` and `<target>/test.csv` for each trainer, streamed in two passes (the
    reweighting needs every row's cell first); returns rows per target and split."""
    from builder.published.export import CSV_COLUMNS, cell_weights, low_codes

    weigh = cell_weights(r for r, _ in trainer_rows(out, photos, hold.test_ids))
    codes = low_codes(set())
    counts = {}
    handles, writers = [], {}
    try:
        for target in TARGETS:
            (out / target).mkdir(exist_ok=True)
            for split in ("train", "test"):
                f = open(out / target / f"{split}.csv", "w", newline="")
                handles.append(f)
                writers[(target, split)] = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore",
                                                          lineterminator="\n")
                writers[(target, split)].writeheader()
        for row, split in trainer_rows(out, photos, hold.test_ids):
            row["low"] = codes[row["disease"]]
            row["REWT_weights"], row["RESM_weights"] = weigh(row)
            for target in TARGETS:
                writers[(target, split)].writerow(row)
                counts.setdefault(target, Counter())[f"{split}_{row['kind']}"] += 1
    finally:
        for f in handles:
            f.close()
    return {t: dict(sorted(c.items())) for t, c in counts.items()}


def write_test_ids(out: Path, hold: Holdout) -> Path:
    """`test_ids.txt`: the held-out photos, for `audit --test-ids` and `export --test-ids`."""
    from builder.core.splits_file import write_test_ids as write

    return write(out / "test_ids.txt", hold.test_ids)


def write_report(out: Path, report: dict) -> None:
    (out / "leakage_report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
