"""The dataset card's prose sections: built from the config, the records' generators and the audit."""
from __future__ import annotations

import json

from builder.core.config import BuildConfig
from builder.core.schema import TOOLKIT_VERSION

KIND_TEXT = {
    "healthy": "healthy skin: the lesion of a real photo inpainted away, everything outside the "
               "inpainted region pixel-identical to the photo",
    "lesion_mapped": "lesion-mapped: a real lesion (donor) moved onto the healthy skin of a healthy "
                     "synthetic (base), often of another skin tone; label from the donor, tone from the base",
    "semantic": "semantic: sampled from Stable Diffusion with per-disease textual-inversion tokens and "
                "LoRA adapters trained on real images",
    "real": "real source photos (only when the config allows it; never for DDI)",
}


def summary(cfg: BuildConfig, rows: int, kinds: list[str]) -> str:
    items = "\n".join(f"- **{k}**: {KIND_TEXT[k]}" for k in kinds)
    return f"""# cgDDI v{cfg.version}

Skin-tone-balanced synthetic dermatology images built from biopsy-confirmed photos with the
cgDDI method (Controllable Generation of Diverse Dermatological Imagery), by cgddi-toolkit
{TOOLKIT_VERSION}. {rows} rows; every row carries typed lineage (the real images it derives from,
its base and donor, prompt, seed, model and revision, parameters), and the train / validation /
test splits follow the real images' splits so that nothing derived from a test image is in
training. No original source photo is included.

Kinds in this version:

{items}"""


def mask_counts(records) -> dict:
    """Masks behind the published rows: real photos used, how many automatic (by method), bases and donors."""
    masks, bases, donors = {}, {}, {}
    for r in records:
        auto = {m.source_id: m.method_version for m in r.auto_masks}
        for sid in r.source_ids:
            masks.setdefault(sid, auto.get(sid))
        if r.kind == "lesion_mapped":
            p = r.params or {}
            for sid in p.get("base_source_ids", []):
                bases.setdefault(sid, sid in auto)
            for sid in p.get("donor_source_ids", []):
                donors.setdefault(sid, sid in auto)
    methods = sorted({m for m in masks.values() if m})
    return {"masks": len(masks), "auto": sum(1 for m in masks.values() if m), "methods": methods,
            "bases": len(bases), "auto_bases": sum(bases.values()),
            "donors": len(donors), "auto_donors": sum(donors.values())}


def _mask_line(cfg: BuildConfig, c: dict) -> str:
    if not c["auto"]:
        gate = "on" if cfg.masks.auto else "off"
        return f"Masks: all {c['masks']} masks behind these rows are hand-drawn (automatic masks: {gate})."
    return (f"Masks: {c['auto']} of {c['masks']} masks automatic, method {', '.join(c['methods'])} "
            f"(confidence >= {cfg.masks.min_confidence}; lower-confidence photos were rejected "
            f"`mask_low_confidence`); lesion mapping used {c['auto_bases']} of {c['bases']} bases and "
            f"{c['auto_donors']} of {c['donors']} donors from automatic masks. Each row lists the automatic "
            "masks it derives from in `auto_masks`.")


def how_built(cfg: BuildConfig, generators: list[tuple], masks: dict | None = None) -> str:
    gen = "\n".join(f"| {k} | {b} | `{m}` | `{r}` | {n} |" for k, b, m, r, n in generators)
    params = json.dumps({k: v for k, v in cfg.to_dict().items() if k != "version"}, indent=2, sort_keys=True,
                        default=list)
    return f"""## How it was built

Built with `python -m builder build --version {cfg.version}` (config hash `{cfg.config_hash()}`;
the full config, library versions and per-file sha256 are in `manifest.json`).

| kind | backend | model | revision | rows |
|---|---|---|---|---:|
{gen}

- Healthy prompt: `{cfg.healthy.prompt}` (`{{tone}}` in light, medium, dark); lesion mask (and
  surgical-ink markers: {cfg.healthy.include_marker}) dilated {cfg.healthy.dilate_px} px, composited
  back with a {cfg.healthy.feather_px} px feather.
- Lesion mapping: pads {list(cfg.lesion_map.pads)} px tried in order, rotation {cfg.lesion_map.rotate},
  donor mask dilated {cfg.lesion_map.dilate_px} px, feather {cfg.lesion_map.feather}.
- {_semantic_line(cfg)}
- {_mask_line(cfg, masks or mask_counts([]))}
- {split_protocol(cfg)}

<details><summary>All build parameters</summary>

```json
{params}
```
</details>"""


def split_protocol(cfg: BuildConfig) -> str:
    """One sentence stating how the real images were split (the card's protocol line)."""
    c = cfg.curation
    tail = "a synthetic takes its sources' most held-out split (test > validation > train)."
    if c.split_method == "patchalign24":
        order = "PatchAlign24's CSV" if c.patchalign24_csv else "the source's metadata table (`ddi_metadata.csv`)"
        val = c.ratios["validation"] / (c.ratios["train"] + c.ratios["validation"])
        return ("Splits: test is PatchAlign24's DDI holdout, scikit-learn `train_test_split(rows, "
                f"test_size=0.2, random_state=12140420)` over the rows of {order} in published order, "
                "decided on the table before any image is read (a row rejected at ingest leaves test; "
                "no other image changes split); images sharing a lineage group with a test image join "
                f"it. Validation ({val:.1%} of the rest) is carved from train, grouped by lineage and "
                f"stratified by tone x malignancy (seed {c.split_seed}); {tail}")
    if c.split_method == "test_ids":
        return (f"Splits: test is a fixed list of source ids (`{c.test_ids_file}`) with their lineage groups; "
                f"train/validation stratified by tone x malignancy (seed {c.split_seed}); {tail}")
    return (f"Splits: seeded ({c.split_seed}) over real images, stratified by tone x malignancy, "
            f"ratios {c.ratios}; {tail}")


def _semantic_line(cfg: BuildConfig) -> str:
    if not cfg.semantic.budget:
        return "Semantic: none in this version (`semantic.budget: 0`)."
    return (f"Semantic: `{cfg.semantic.model_id}` at `{cfg.semantic.revision}` with textual-inversion "
            "tokens and LoRA, prompts `An image of <disease-class> on the skin of a {tone}-skinned "
            f"individual`; budget {cfg.semantic.budget}.")


STRUCTURE = """## Structure

Configs: `all` (default) and one per kind (`healthy`, `lesion_mapped`, `semantic` when present);
`all` reads the per-kind files, so nothing is stored twice. Files:
`data/<kind>/<split>-XXXXX-of-YYYYY.parquet`, row groups of at most 100 rows for streaming.

| column | type | meaning |
|---|---|---|
| `sample_id` | string | stable id `<kind>-<16 hex>` from content and lineage |
| `image` | Image (PNG) | the image; PNG bytes as generated, never re-encoded |
| `kind` | ClassLabel | real, healthy, lesion_mapped, semantic |
| `split` | string | train, validation, test |
| `skin_tone` | ClassLabel | light (Fitzpatrick I-II), medium (III-IV), dark (V-VI) |
| `fitzpatrick` | int8 | Fitzpatrick type 1-6 when the source gives one |
| `malignant` | ClassLabel | benign, malignant (biopsy-confirmed for the source lesion) |
| `disease` | ClassLabel | joined disease class (65 DDI classes), then `healthy`, then any class outside DDI's |
| `has_lesion` | bool | false for healthy rows (no lesion: `malignant` is then `benign` by convention) |
| `disease_raw` | string | the source's own label |
| `source_ids` | list of string | every real image the row derives from (`ddi:000123`, ...) |
| `base_id`, `donor_id` | string | lesion mapping: healthy base and real lesion donor |
| `placement` | string | lesion mapping: `fit` (random valid position), `downscaled`, `other_base`, `other_base_downscaled` (the plan's fallbacks), `kept_in_place` (nothing fit: left where it lay in the donor, as the original method did) |
| `prompt`, `seed` | string, int64 | generation prompt and per-sample seed |
| `generator` | struct | backend, model id, pinned revision, adapter files |
| `auto_masks` | list of struct | automatic (not hand-drawn) masks the row derives from: source id, method, version, confidence; empty = hand masks only |
| `params` | string | generation parameters as canonical JSON |
| `toolkit_version` | string | toolkit version that built the row |"""


def delivery(d: dict | None, cfg: BuildConfig) -> str:
    """The lesion-map plan as delivered: per disease, rows and (base tone x donor tone) cells filled."""
    if not d or not d["planned"]:
        return ""
    per: dict[str, list[int]] = {}
    for c in d["cells"]:
        p = per.setdefault(c["disease"], [0, 0, 0, 0])
        p[0] += c["planned"]
        p[1] += c["delivered"]
        p[2] += 1
        p[3] += c["delivered"] == c["planned"]
    rows = "\n".join(f"| {dis} | {p[1]} / {p[0]} | {p[3]} / {p[2]} |" for dis, p in sorted(per.items()))
    fb = ", ".join(cfg.lesion_map.fallbacks) or "none"
    how = ", ".join(f"{k} {v}" for k, v in d["placement"].items())
    return f"""## Lesion-map plan, as delivered

The plan balances base tone x disease x donor tone. Delivered {d['delivered']} of {d['planned']}
planned lesion maps ({d['delivered'] / d['planned']:.1%}); fallbacks after pads
{list(cfg.lesion_map.pads)}: {fb}. Placement of the delivered rows (`placement` column): {how}.
Counts are of the lesion-mapping stage, before curation moves or removes rows for leakage.

| disease | lesion maps delivered / planned | cells filled / cells |
|---|---:|---:|
{rows}"""


def lineage(audit: dict | None, version: str) -> str:
    if audit is None:
        result = "No audit result was recorded for this build."
    else:
        reasons = ", ".join(f"{k}: {v}" for k, v in audit["leakage"]["by_reason"].items()) or "none"
        result = (f"Audit at build time: **{'clean' if audit['leakage']['rows'] == 0 else 'LEAKAGE FOUND'}**: "
                  f"{audit['rows']} rows, {audit['test_ids']['count']} test source images, "
                  f"{audit['leakage']['rows']} leaked rows (by reason: {reasons}); near duplicates "
                  f"searched within {audit['phash_hamming']} bits of a 64-bit pHash.")
    return f"""## Lineage and leakage audit

Every row names the real images it derives from (`source_ids`; for semantic rows, every image
the models saw). The rule (cgDDI): no synthetic derived from a test image may be used in training,
and near duplicates across splits count as leakage too. Re-check it from the data alone:

```bash
python -m builder audit ORG/NAME --revision v{version} [--test-ids your_test_ids.txt]
```

{result}"""


def usage(repo: str, version: str) -> str:
    return f"""## Usage

```python
from datasets import load_dataset

ds = load_dataset("{repo}", revision="v{version}")              # all kinds
healthy = load_dataset("{repo}", "healthy", revision="v{version}")
stream = load_dataset("{repo}", revision="v{version}", split="train", streaming=True)
```

Always pin `revision="v{version}"`: tags are immutable, `main` moves with new versions.

Fixed-size tensors for training (images come in several sizes): resize in a transform, then a
plain PyTorch `DataLoader` batches them; `has_lesion` filters the healthy rows out of a classifier's data.

```python
{TRAIN_SNIPPET}
```

`ds["train"].train_test_split(test_size=0.1, stratify_by_column="disease")` works (`disease` is a
ClassLabel). For PatchAlign24 or FairDisCo, export CSVs in their own encodings:
`python -m builder export patchalign --version {version} --out DIR [--real DDI_DIR]` (or `fairdisco`)."""


# Runs as written in tests/test_downstream.py (with `ds` loaded from a local build).
TRAIN_SNIPPET = """import numpy as np
import torch

def to_tensors(batch, size=224):
    pixels = [np.asarray(im.convert("RGB").resize((size, size))) for im in batch["image"]]
    return {"pixel_values": torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float() / 255,
            "malignant": torch.tensor(batch["malignant"]), "skin_tone": torch.tensor(batch["skin_tone"])}

lesions = ds["train"].filter(lambda has: has, input_columns="has_lesion")
loader = torch.utils.data.DataLoader(lesions.with_transform(to_tensors), batch_size=16, shuffle=True)
batch = next(iter(loader))   # pixel_values: (16, 3, 224, 224) float, malignant: (16,)"""


TERMS = """## Terms

No original DDI image is included: every image is synthetic, and lesion-mapped images contain
lesion pixels of real photos composited onto synthetic skin. Derived from the Stanford Diverse
Dermatology Images (DDI) under its research-use terms: use for non-commercial research only, do
not attempt to re-identify patients, and cite the sources below."""

BIAS = """## Bias, risks and limitations

- Not for clinical use. Synthetic images can look plausible and still be wrong; labels come
  from the source lesion (lesion-mapped) or from the prompt (semantic), not from a new biopsy.
- Skin-tone balance is by DDI's three coarse groups; within-group variation and lighting,
  anatomy and camera biases of the source photos carry over.
- Rare diseases rest on a few real images: lesion-mapped and semantic rows of such classes repeat
  the same few lesions, which inflates apparent class size.
- Generative models carry biases of their pre-training data (e.g. lighter-skinned dermatology
  images dominate public sets), which can leak into semantic rows.
- Evaluate on held-out real images only, with the split used to build this version."""

CITATIONS = """## Citations

```bibtex
@inproceedings{cgddi2026,
  title     = {Controllable Generation of Diverse Dermatological Imagery},
  booktitle = {Medical Image Computing and Computer Assisted Intervention (MICCAI)},
  year      = {2026}
}
@article{daneshjou2022ddi,
  title   = {Disparities in dermatology AI performance on a diverse, curated clinical image set},
  author  = {Daneshjou, Roxana and Vodrahalli, Kailas and Novoa, Roberto A. and others},
  journal = {Science Advances},
  volume  = {8},
  number  = {32},
  year    = {2022}
}
@misc{fedd_sddi,
  title  = {FEDD: Fair, Efficient, and Diverse Diffusion-based Lesion Segmentation and Malignancy Classification},
  author = {Carri{\'o}n, H{\'e}ctor and Norouzi, Narges},
  note   = {https://github.com/hectorcarrion/FEDD}
}
```"""

LICENSE = """# cgDDI terms of use (cgddi-research-use)

This dataset is synthetic imagery derived from the Stanford Diverse Dermatology Images (DDI)
dataset and related research sources, and inherits their research-use terms:

1. Use it for non-commercial research and education only.
2. Do not attempt to identify any patient, and do not combine it with data that could.
3. Do not use it for clinical decisions or in a medical device.
4. Cite cgDDI, DDI and the other sources named in the dataset card.
5. No original DDI image is included. Requests for the original images go to the DDI authors
   under their own terms.
"""
