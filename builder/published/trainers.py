"""What PatchAlign24's and FairDisCo's own DDI code reads, in its order, and how it groups skin tones.

Read from their code (aayushmanace/PatchAlign24 `train_PatchAlign_DDI_InDomain.py`,
`multi_evaluate.ipynb`, README "Data" step 4; siyi-wind/FairDisCo `train_DisCo.py`,
`multi_evaluate.ipynb`). Both training scripts, under `if __name__ == '__main__':`, first read
`ddi_metadata_code.csv` from the working directory, split it with `train_test_split(df, df['high'],
test_size=0.2, ...)`, write `temp_train_<model>.csv` / `temp_test_<model>.csv`, and `custom_load`
then reads images as `os.path.join(image_dir, hasher)` with the DDI `image_dir` fixed in the code.

Skin tone: DDI's groups 12/34/56 become `fitzpatrick` 1/2/3 in `data_play_ddi.ipynb`. PatchAlign24's
README asks to change them to 1/3/5 before running, because its evaluation groups tones as
`(fitzpatrick - 1) // 2` for the random holdout (`num=[1,2][holdout_set=='random_holdout']`);
FairDisCo keeps 1/2/3 and groups as `fitzpatrick - 1`. Training uses `fitzpatrick - 1` as the
6-way skin-type target in both: 0/2/4 for PatchAlign24, 0/1/2 for FairDisCo.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

METADATA_FILE = "ddi_metadata_code.csv"  # what both scripts read first, relative to their working directory


@dataclasses.dataclass(frozen=True)
class Edit:
    where: str     # file and line(s) in the trainer's repository
    original: str  # the line as it stands there (stripped)
    template: str  # its replacement; `{out}` is the export folder


@dataclasses.dataclass(frozen=True)
class Target:
    tool: str
    repo: str
    script: str
    fitzpatrick: dict[int, int]  # DDI tone group -> the `fitzpatrick` value the trainer expects
    group_divisor: int           # its evaluation: tone group = (fitzpatrick - 1) // group_divisor
    group_where: str             # where that grouping is written
    own_split: str               # the split its script makes by itself (replaced by the export's)
    edits: tuple[Edit, ...]
    run: str                     # how its README runs the script on DDI

    def group(self, fitzpatrick: int) -> int:
        """The tone group its evaluation puts a row in (0, 1, 2 for DDI's three groups)."""
        return (int(fitzpatrick) - 1) // self.group_divisor


def _edits(script: str, read_line: int, split_lines: str, seed: int, image_line: int, image_dir: str) -> tuple:
    return (
        Edit(f"`{script}` line {read_line}", "df = pd.read_csv('ddi_metadata_code.csv')",
             "df = pd.read_csv('{out}/ddi_metadata_code.csv')"),
        Edit(f"`{script}` lines {split_lines} (the `random_holdout` branch for `ddi`)",
             f"train, test, y_train, y_test = train_test_split(df, df['high'], test_size=0.2, random_state={seed})",
             "train, test = pd.read_csv('{out}/train.csv'), pd.read_csv('{out}/test.csv')"),
        Edit(f"`{script}` line {image_line} (in `custom_load`)", f"image_dir = '{image_dir}'",
             "image_dir = '{out}/images'"),
    )


TARGETS = {
    "patchalign": Target(
        "PatchAlign24", "aayushmanace/PatchAlign24", "train_PatchAlign_DDI_InDomain.py",
        fitzpatrick={12: 1, 34: 3, 56: 5}, group_divisor=2,
        group_where="multi_evaluate.ipynb, `cal_metrics`: `type = (df.iloc[i]['fitzpatrick']-1)//num` with "
                    "`num=[1,2][holdout_set=='random_holdout']`",
        own_split="train_test_split(df, df['high'], test_size=0.2, random_state=12140420)",
        edits=_edits("train_PatchAlign_DDI_InDomain.py", 466, "479-484", 12140420, 386, "images"),
        run="python3 -u train_PatchAlign_DDI_InDomain.py 20 full ddi DDI_INDOMAIN"),
    "fairdisco": Target(
        "FairDisCo", "siyi-wind/FairDisCo", "train_DisCo.py",
        fitzpatrick={12: 1, 34: 2, 56: 3}, group_divisor=1,
        group_where="multi_evaluate.ipynb, `cal_metrics`: `type = df.iloc[i]['fitzpatrick']-1` with "
                    "`type_indices = [0, 1, 2]`",
        own_split="train_test_split(df, df['high'], test_size=0.2, random_state=64)",
        edits=_edits("train_DisCo.py", 301, "313-318", 64, 223,
                     "/bigdata/siyiplace/data/skin_lesion/ddidiversedermatologyimages/"),
        run="python -u train_DisCo.py 15 full ddi DisCo"),
}


def encode_tones(rows: list[dict], target: str) -> None:
    """Set each row's `fitzpatrick` from its DDI tone group (`skin_tone` 12/34/56), as `target` expects."""
    table = TARGETS[target].fitzpatrick
    for r in rows:
        r["fitzpatrick"] = table[int(r["skin_tone"])]


def training_text(target: str, out: Path, *, holdout: str, include_healthy: bool, healthy_code: int) -> str:
    """TRAINING.md: every edit that points the trainer's own script at this export, with `out`'s paths."""
    t = TARGETS[target]
    out = Path(out).resolve()
    edits = "\n".join(f"{i}. {e.where}: replace\n   `{e.original}`\n   by\n   `{e.template.format(out=out)}`"
                      for i, e in enumerate(t.edits, 1))
    tones = "/".join(str(t.fitzpatrick[g]) for g in (12, 34, 56))
    healthy = (f"Healthy-skin rows are included on request (`--include-healthy`): their `disease` is "
               f"`healthy`, `kind` is `healthy`, `high` is 0 and `low` is {healthy_code}; they are not lesions."
               if include_healthy else
               "Only lesion rows are exported (the task is malignant vs benign lesion); healthy-skin rows are "
               "left out (`--include-healthy` adds them, named `healthy`).")
    return f"""# Training {t.tool} on this export

Export folder: `{out}`. `train.csv`, `test.csv` and `{METADATA_FILE}` (train then test rows) are in
{t.tool}'s DDI encodings; every `hasher` is a file in `{out}/images`. Test: {holdout}.

In a clone of {t.repo}, `{t.script}` first reads `{METADATA_FILE}` from its working directory, then
makes its own split ({t.own_split}), then loads images from a folder fixed in `custom_load`.
Make these {len(t.edits)} edits (each line as it stands in their code; the split spans several lines there):

{edits}

then run it from the clone as its README does: `{t.run}`.

Skin tone: `fitzpatrick` is {tones} for DDI's groups I-II / III-IV / V-VI, as {t.tool} expects; its
evaluation ({t.group_where}) then puts them in groups 0 / 1 / 2, so PQD, DPM and EOM compare three
tone groups. It trains on `high` (malignancy) with `fitzpatrick - 1` as the skin-type target.
{healthy}
`low` keeps PatchAlign24's codes of the raw DDI disease (`low_codes.csv`).
"""
