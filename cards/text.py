"""The dataset card's prose: one small function per section, each built from what was built.

Inputs are a `CardFacts` (config, records' generators, sources, measured source pixels, audit);
`cards.card.prose` lists the sections in order, so a new section is one function and one line there.
"""
from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

from builder.core.config import BuildConfig
from builder.core.schema import (KINDS, MALIGNANCY, PUBLISHED_COLUMNS, SKIN_TONES, SPLITS, STEP_OF_KIND, TOOLKIT_VERSION,
                                  Record)
from builder.core.text import md_text
from cards import rai
from cards.sources import Source, card_license


@dataclasses.dataclass(frozen=True)
class CardFacts:
    """Everything the prose may state, measured or read from the build (nothing assumed)."""

    cfg: BuildConfig
    records: list[Record]                     # the published rows
    generators: list[tuple]                   # (kind, backend, model id, revision, rows) that ran
    sources: list[Source]
    plots: tuple[str, ...] = ()               # figure paths relative to the card
    pixels: dict | None = None                # builder.build.source_pixels.measure_source_pixels
    source_info: dict | None = None           # from the build: name, fingerprint (when recorded)
    audit: dict | None = None
    stand_in: dict | None = None              # a CPU stand-in ran in place of a generator (builder.build.pipeline)
    rules: dict | None = None                 # synthetic rows per split under the strict and the paper's rule
    delivery: dict | None = None              # the lesion-map stage's delivered / planned cells
    review: dict | None = None                # the human review (build --decisions), else None
    artefacts: dict | None = None             # builder.build.fill_artefacts.measure_fill_artefacts
    repo: str = "ORG/NAME"
    generator_entries: dict = dataclasses.field(default_factory=dict)  # (kind, backend) -> CardEntry
    # (builder.core.backends.card_entries: each backend's card sentence, settings, tags; passed in by the build)

    @property
    def rows(self) -> int:
        return len(self.records)

    @property
    def kinds(self) -> list[str]:
        return sorted({r.kind for r in self.records}, key=KINDS.index)

    def backends(self, kind: str) -> set[str]:
        return {b for k, b, *_ in self.generators if k == kind}

    def entries(self, kind: str, ran: bool = True) -> dict:
        """backend -> CardEntry of the registered backends of `kind` that made rows (`ran`) or did not."""
        return {b: e for (k, b), e in self.generator_entries.items()
                if k == kind and (b in self.backends(kind)) == ran}

    @property
    def demo_only(self) -> bool:
        return all(not s.real_patients for s in self.sources)


KIND_TEXT = {
    "healthy": "healthy skin: the lesion of a source photo inpainted away; the rest of the photo kept as is",
    "lesion_mapped": "lesion-mapped: a lesion cut from a source photo (the donor) pasted onto the healthy skin "
                     "of a healthy image (the base), often of another skin tone; label from the donor, tone "
                     "from the base",
    "semantic": "semantic: sampled from a diffusion model with per-disease textual-inversion tokens and LoRA "
                "adapters trained on source photos",
    "real": "real source photos, as they are",
}


def pct(x: float) -> str:
    """A share as a whole percent; never rounds a partial share to 0% or 100%."""
    if 0 < x < 0.01:
        return "<1%"
    if 0.99 < x < 1:
        return ">99%"
    return f"{100 * x:.0f}%"


def summary(f: CardFacts) -> str:
    items = "\n".join(f"- **{k}**: {KIND_TEXT[k]}" for k in f.kinds)
    names = " and ".join(s.title for s in f.sources)
    what = ("synthetic photos made by the toolkit itself: no patient is involved" if f.demo_only
            else "real clinical photos")
    tones = Counter(r.skin_tone for r in f.records)
    per_tone = ", ".join(f"{t} {tones[t]}" for t in SKIN_TONES)
    return f"""# cgDDI v{f.cfg.version}

Dermatology images built with the cgDDI method (Controllable Generation of Diverse
Dermatological Imagery), which aims at balanced skin tones, by cgddi-toolkit {TOOLKIT_VERSION},
from **{names}** ({what}). {f.rows} rows (per skin tone: {per_tone}); every row carries typed
lineage (the source photos it derives from, its base and donor, prompt, seed, model and revision,
parameters), and the train / validation / test splits follow the source photos' splits so that
nothing derived from a test photo is in training. {_pixel_sentence(f)}

Kinds in this version:

{items}"""


def _pixel_sentence(f: CardFacts) -> str:
    if "healthy" not in f.kinds and "lesion_mapped" not in f.kinds:
        return ""
    return ("No source photo is published as a file of its own, but by the method's design healthy and "
            "lesion-mapped images keep most of their source photos' pixels: see "
            "[Source pixels in the images](#source-pixels-in-the-images).")


def source(f: CardFacts) -> str:
    lines = ["## Source", ""]
    for s in f.sources:
        lines.append(f"- **{s.title}** (ids `{s.name}:...`, licence `{s.license}`): {s.description}")
    info = f.source_info or {}
    if info.get("fingerprint"):
        what = f"`{info['table']}` and {info['files']} image and mask files" if info.get("table") else \
            "metadata table, every image and mask file"
        lines += ["", f"Source fingerprint ({what}, as ingested): `{info['fingerprint']}`."]
    return "\n".join(lines)


def source_pixels(f: CardFacts) -> str:
    head = "## Source pixels in the images\n\n"
    if f.pixels is None:
        return head + "The share of source-photo pixels in the images was not measured for this build."
    rows = ["| kind | rows measured | pixels bit-identical to a source photo: median (range) | donor lesion "
            "pixels: median (range) |", "|---|---:|---|---|"]
    said = []
    for kind, m in f.pixels.items():
        ident, donor = m["identical"], m.get("donor")
        rows.append(f"| {kind} | {m['measured']} of {m['rows']} | {_range(ident)} | {_range(donor)} |")
        said.append(plain_pixels(kind, m))
    return head + (
        "Measured at build time on the decoded pixels of every published image against its source photos "
        "(the ingested photos named in `source_ids`, same position, exact RGB equality; photos of another "
        "size are not comparable).\n\n" + "\n".join(rows) + "\n\n" + "\n".join(f"- {s}" for s in said if s))


def _range(stats: dict | None) -> str:
    return "-" if not stats else f"{pct(stats['median'])} ({pct(stats['min'])} to {pct(stats['max'])})"


def plain_pixels(kind: str, m: dict) -> str:
    """One plain sentence on how much of a kind's images is source-photo pixels."""
    ident = m["identical"]
    skipped = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in m["not_measured"].items())
    tail = f" Not measured: {skipped}." if skipped else ""
    if not ident:
        return f"**{kind}**: no row could be compared with a source photo.{tail}"
    if kind == "healthy":
        return (f"**healthy**: a median {pct(ident['median'])} of each image's pixels (range "
                f"{pct(ident['min'])} to {pct(ident['max'])}) are its source photo's pixels, unchanged; the rest is "
                f"the inpainted lesion region.{tail}")
    if kind == "lesion_mapped":
        donor = m.get("donor")
        lesion = (f" The donor's lesion covers a median {pct(donor['median'])} of the image (range "
                  f"{pct(donor['min'])} to {pct(donor['max'])}; the pixels that differ from the healthy base): "
                  "lesion pixels from the donor's source photo, placed on the base (moved, rotated or rescaled as "
                  "the `placement` and `params` columns say) and blended at the edge, so counted as identical "
                  "above only where they kept their place and value.") if donor else ""
        return (f"**lesion_mapped**: a median {pct(ident['median'])} of each image's pixels (range "
                f"{pct(ident['min'])} to {pct(ident['max'])}) are bit-identical to a source photo (mostly the "
                f"base's photo, outside its inpainted region).{lesion}{tail}")
    return (f"**{kind}**: a median {pct(ident['median'])} (range {pct(ident['min'])} to {pct(ident['max'])}) "
            f"of each image's pixels equal a source photo's at the same position.{tail}")


def strip_markdown(s: str) -> str:
    return s.replace("**", "").replace("`", "")


def mask_counts(records) -> dict:
    """Masks behind the published rows: real photos used, how many automatic (by method), bases and donors."""
    masks, bases, donors = {}, {}, {}
    for r in records:
        auto = {m.source_id: m.method_version for m in r.auto_masks}
        for sid in r.source_ids:
            masks.setdefault(sid, auto.get(sid))
        for sid in r.base_source_ids:  # lesion-mapped rows only
            bases.setdefault(sid, sid in auto)
        for sid in r.donor_source_ids:
            donors.setdefault(sid, sid in auto)
    methods = sorted({m for m in masks.values() if m})
    return {"masks": len(masks), "auto": sum(1 for m in masks.values() if m), "methods": methods,
            "bases": len(bases), "auto_bases": sum(bases.values()),
            "donors": len(donors), "auto_donors": sum(donors.values())}


def _mask_line(cfg: BuildConfig, c: dict) -> str:
    if not c["auto"]:
        gate = "on" if cfg.masks.auto else "off"
        return f"Masks: all {c['masks']} masks behind these rows are hand-drawn (automatic masks: {gate})."
    return (f"Masks: {c['auto']} of {c['masks']} masks automatic, method {', '.join(md_text(m) for m in c['methods'])} "
            f"(confidence >= {cfg.masks.min_confidence}; lower-confidence photos were rejected "
            f"`mask_low_confidence`); lesion mapping used {c['auto_bases']} of {c['bases']} bases and "
            f"{c['auto_donors']} of {c['donors']} donors from automatic masks. Each row lists the automatic "
            "masks it derives from in `auto_masks`.")


def how_built(f: CardFacts) -> str:
    if (f.source_info or {}).get("release"):
        return imported(f, f.source_info["release"])
    cfg = f.cfg
    gen = "\n".join(f"| {k} | {b} | `{m}` | `{r}` | {n} |" for k, b, m, r, n in f.generators)
    bullets = [b for b in (_healthy_line(f), _lesion_map_line(f), _semantic_line(f)) if b]
    bullets += [_mask_line(cfg, mask_counts(f.records)), split_protocol(cfg, f.source_info)]
    params = json.dumps(_stage_params(f), indent=2, sort_keys=True, default=list)
    return f"""## How it was built

Built with `python -m builder build --version {cfg.version}` (config hash `{cfg.config_hash()}`;
the full config, library versions and per-file sha256 are in `manifest.json`). Generators that
produced the published rows:

| kind | backend | model | revision | rows |
|---|---|---|---|---:|
{gen}

{chr(10).join(f"- {b}" for b in bullets)}

<details><summary>Parameters of the stages that ran (the full config is in manifest.json)</summary>

```json
{params}
```
</details>"""


def imported(f: CardFacts, release: dict) -> str:
    """How a version made from a published cgDDI release was made: imported, not generated here."""
    where = (f"the Hub dataset `{release['repo_id']}` at revision `{release['revision']}` (commit "
             f"`{release['commit']}`)" if release.get("kind") == "hub" else f"a local copy (`{release['name']}`)")
    hold = release["holdout"]
    held = (f"PatchAlign24's DDI holdout, scikit-learn `train_test_split(rows, test_size=0.2, random_state="
            f"{hold['seed']})` over `ddi_metadata.csv` in published order" if hold["method"] == "patchalign24"
            else f"the photos listed in `{hold['file']}`")
    rule = ("strict: a lesion map is test when its base or its donor photo is held out" if release["rule"] == "strict"
            else "the paper's: a lesion map is test when its donor photo is held out (its base may be a test photo)")
    kept = "; ".join(f"{r}: {', '.join(f'{k} {v}' for k, v in sorted(c.items()))}"
                     for r, c in sorted(release["lesion_maps_by_rule"].items()))
    return f"""## How it was made

Imported, not generated by this toolkit: the lesion maps of the cgDDI release, read from {where}
with `python -m builder import-release`. Each row's lineage comes from its released file name
(`{{base}}_with_{{disease}}_from_{{donor tone}}_{{donor}}.png`, `params.release_file`), checked against
DDI's metadata table; the pixels are the released bytes. Files by kind in the release:
{', '.join(f'{k} {v}' for k, v in sorted(release['by_kind'].items()))} (only lesion maps are published here).

- Held-out photos ({hold['test_ids']}): {held}.
- Leakage rule: {rule}.
- Lesion maps per split under each rule: {kept}.
- `base_id` and `donor_id` name the DDI photos themselves (`ddi:<stem>`, as `source_ids` does, base
  first): the release publishes no healthy row they could point at.
- The release's settings (placement, blending) are those of its authors; the config in
  `manifest.json` records this version's publishing and split settings only."""


def split_protocol(cfg: BuildConfig, source_info: dict | None = None) -> str:
    """One sentence stating how the real images were split (the card's protocol line), naming the
    table the build actually split (`source_info`: the manifest's source)."""
    c = cfg.curation
    tail = "a synthetic takes its sources' most held-out split (test > validation > train)."
    by = "source x tone x malignancy" if (source_info or {}).get("sources") else "tone x malignancy"
    if c.split_method == "patchalign24":
        info = source_info or {}
        table = info.get("table") or "ddi_metadata.csv"
        order = "PatchAlign24's CSV" if c.patchalign24_csv else f"the source's metadata table (`{table}`)"
        holdout = "PatchAlign24's DDI holdout" if info.get("layout", "ddi") == "ddi" else (
            f"drawn with PatchAlign24's DDI holdout call on this {info['layout']} source (not a split of theirs)")
        if info.get("sources"):  # several sources: each one's own holdout, on its own table
            from cards.directions import split_sentence

            holdout, order = f"each source's own ({split_sentence(info, c.patchalign24_csv)})", "its table"
        val = c.ratios["validation"] / (c.ratios["train"] + c.ratios["validation"])
        return (f"Splits: test is {holdout}, scikit-learn `train_test_split(rows, "
                f"test_size=0.2, random_state=12140420)` over the rows of {order} in published order, "
                "decided on the table before any image is read (a row rejected at ingest leaves test; "
                "no other image changes split); images sharing a lineage group with a test image join "
                f"it. Validation ({val:.1%} of the rest) is carved from train, grouped by lineage and "
                f"stratified by {by} (seed {c.split_seed}); {tail}")
    if c.split_method == "test_ids":
        return (f"Splits: test is a fixed list of source ids (`{c.test_ids_file}`) with their lineage groups; "
                f"train/validation stratified by {by} (seed {c.split_seed}); {tail}")
    return (f"Splits: seeded ({c.split_seed}) over real images, stratified by {by}, "
            f"ratios {c.ratios}; {tail}")


STAGE_OF = {kind: step for kind, step in STEP_OF_KIND.items() if kind != "real"}  # generation steps


def _stage_params(f: CardFacts) -> dict:
    """The config sections of the stages that produced rows (and source, curation, publish)."""
    d = f.cfg.to_dict()
    ran = {STAGE_OF[k] for k in f.kinds if k in STAGE_OF}
    out = {k: v for k, v in d.items() if k not in ("version", *STAGE_OF.values()) or k in ran}
    info = f.source_info or {}
    if info.get("name") and isinstance(out.get("source"), dict):  # the source built from, not the config's default
        out["source"] = {**out["source"], "name": info["name"]}
    for kind, section in STAGE_OF.items():  # settings that only backends which did not run read: left out
        if section in out:
            idle = {key for e in f.entries(kind, ran=False).values() for key in e.settings} - \
                {key for e in f.entries(kind).values() for key in e.settings}
            out[section] = {k: v for k, v in out[section].items() if k not in idle}
    return out


def _healthy_line(f: CardFacts) -> str:
    h = f.cfg.healthy
    marks = "with surgical-ink markers" if h.include_marker else "markers left in place"
    rim = (f", grown over the lesion's perilesional rim where the photo shows one (skin up to {h.rim_px} px out "
           "whose colour differs from the skin beyond it and returns to it within that width: a shadow, a "
           "collar, a halo)" if h.rim_px else "")
    region = (f"inpainted region = lesion mask ({marks}) dilated {h.dilate_px} px{rim}, composited back with a "
              f"{h.feather_px} px feather; every pixel outside it is kept")
    parts = _generator_texts(f, "healthy")
    if not parts:
        return ""
    stood = (f.stand_in or {}).get("healthy")
    note = (f" **Stand-in:** this version's healthy generator is `{stood['configured']}`"
            + (f" (`{stood['model_id']}`)" if stood.get("model_id") else "")
            + f"; this build ran the CPU stand-in `{stood['used']}` instead, because of {stood['why']}. "
            "These healthy images (and every lesion map made on them) are not the version's generator's."
            if stood else "")
    return f"Healthy: {'; '.join(parts)}; {region}.{note}"


def _lesion_map_line(f: CardFacts) -> str:
    if not f.backends("lesion_mapped"):
        return ""
    lm = f.cfg.lesion_map
    return (f"Lesion mapping: pads {list(lm.pads)} px tried in order, rotation {lm.rotate}, donor mask "
            f"dilated {lm.dilate_px} px, feather {lm.feather}.")


def _semantic_line(f: CardFacts) -> str:
    models = sorted({(m, r) for k, _, m, r, _ in f.generators if k == "semantic"})
    if not models:
        return ""
    names = ", ".join(f"`{m}` at `{r}`" for m, r in models)
    return f"Semantic: {names} {'; '.join(_generator_texts(f, 'semantic'))}."


def _generator_texts(f: CardFacts, kind: str) -> list[str]:
    """The card sentence of each backend that made rows of `kind` (registry order; unknown ones by name)."""
    known = f.entries(kind)
    return [e.text for e in known.values()] + [f"backend `{b}`" for b in sorted(f.backends(kind) - set(known))]


def structure(f: CardFacts) -> str:
    lineage = ", ".join(f"`{c.name}`" for c in PUBLISHED_COLUMNS if c.lineage)
    return f"""## Structure

Configs: `all` (default) and one per kind (`healthy`, `lesion_mapped`, `semantic` when present);
`all` reads the per-kind files, so nothing is stored twice. Files:
`data/<kind>/<split>-XXXXX-of-YYYYY.parquet`, row groups of at most 100 rows for streaming.

{column_table(f)}

Lineage columns (how each row was made, not what it shows): {lineage}."""


def column_table(f: CardFacts) -> str:
    """One line per published column, in order, from `builder.core.schema.PUBLISHED_COLUMNS`."""
    label = ("assigned by the demo generator (no diagnosis)" if f.demo_only
             else "from the source's diagnosis of the source lesion")
    notes = {"malignant": f"; {label}", "source_ids": f"; here `{f.sources[0].name}:...`"}
    lines = ["| column | type | meaning |", "|---|---|---|"]
    lines += [f"| `{c.name}` | {c.card_type} | {c.description}{notes.get(c.name, '')} |" for c in PUBLISHED_COLUMNS]
    return "\n".join(lines)


def splits(f: CardFacts) -> str:
    """One row per kind x split, one column per tone with `benign / malignant`."""
    counts = Counter((r.kind, r.split, r.skin_tone, bool(r.malignant)) for r in f.records)
    lines = ["## Splits", "", "Rows per kind, split, skin tone and malignancy (benign / malignant).", "",
             "| kind | split | " + " | ".join(SKIN_TONES) + " | total |",
             "|---|---|" + "---:|" * (len(SKIN_TONES) + 1)]
    for kind in KINDS:
        for split in SPLITS:
            cells = [(counts[(kind, split, t, False)], counts[(kind, split, t, True)]) for t in SKIN_TONES]
            total = sum(b + m for b, m in cells)
            if total:
                lines.append(f"| {kind} | {split} | " + " | ".join(f"{b} / {m}" for b, m in cells)
                             + f" | {total} |")
    tone_totals = [sum(n for (_, _, t, _), n in counts.items() if t == tone) for tone in SKIN_TONES]
    lines.append("| **all** | | " + " | ".join(map(str, tone_totals)) + f" | {f.rows} |")
    return "\n".join(lines) + f"\n\nMalignancy classes: {', '.join(MALIGNANCY)}. Toolkit {TOOLKIT_VERSION}."


def figures(f: CardFacts) -> str:
    if not f.plots:
        return ""
    lines = ["## Figures", ""]
    for p in f.plots:
        title = "Distributions" if "distribution" in p else "Samples: " + Path(p).stem.replace("samples_", "")
        lines += [f"**{title}**", "", f"![{title}]({p})", ""]
    return "\n".join(lines)


def delivery(f: CardFacts) -> str:
    """The lesion-map plan as delivered: the paper's figures for every-pair plans (candidates, discarded,
    kept, the imbalance ratio over base tones), per-disease cells for balanced plans."""
    d, cfg = f.delivery, f.cfg
    if not d or not d["planned"]:
        return ""
    if cfg.lesion_map.pairing == "all":
        return _all_pairs_delivery(f)
    per: dict[str, list[int]] = {}
    for c in d["cells"]:
        p = per.setdefault(c["disease"], [0, 0, 0, 0])
        p[0] += c["planned"]
        p[1] += c["delivered"]
        p[2] += 1
        p[3] += c["delivered"] == c["planned"]
    rows = "\n".join(f"| {md_text(dis)} | {p[1]} / {p[0]} | {p[3]} / {p[2]} |" for dis, p in sorted(per.items()))
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


def imbalance_ratio(counts: dict[str, int]) -> float | None:
    """Max over min of the rows per skin tone (the paper's S4); None when a tone has no row."""
    values = [counts.get(t, 0) for t in SKIN_TONES]
    return round(max(values) / min(values), 2) if min(values) > 0 else None


def _all_pairs_delivery(f: CardFacts) -> str:
    """The paper's S2.2 and S4 figures for this version: candidates, discarded, kept, and per base tone."""
    d, lm = f.delivery, f.cfg.lesion_map
    planned, made = d["planned"], d["delivered"]
    published = Counter(r.skin_tone for r in f.records if r.kind == "lesion_mapped")
    ratio = imbalance_ratio(published)
    sample = "every base x every donor" if lm.budget is None else f"a seeded sample of {lm.budget} base x donor pairs"
    tones = " / ".join(f"{published.get(t, 0):,}" for t in SKIN_TONES)
    return f"""## Lesion mapping, as the paper counts it

Candidates: {sample} ({planned:,}). A candidate whose lesion fits nowhere on the base's skin at
{list(lm.pads)} px from its edge (scale 1, rotation {"random" if lm.rotate else "0"}) is discarded:
{planned - made:,} discarded ({(planned - made) / planned:.1%}), {made:,} made. Published after
curation (the leakage rule and near-duplicate removal): {sum(published.values()):,} lesion-mapped rows,
light / medium / dark by base tone {tones}; imbalance ratio (max / min over tones)
{ratio if ratio is not None else "undefined (a tone has no row)"}. The paper's release: 103,206
candidates, 22,779 discarded (22%), 80,427 kept, by base tone 25,726 / 30,392 / 24,309 (ratio 1.25)."""


def lineage(f: CardFacts) -> str:
    audit = f.audit
    if audit is None:
        result = "No audit result was recorded for this build."
    else:
        reasons = ", ".join(f"{k}: {v}" for k, v in audit["leakage"]["by_reason"].items()) or "none"
        result = (f"Audit at build time: **{'clean' if audit['leakage']['rows'] == 0 else 'LEAKAGE FOUND'}**: "
                  f"{audit['rows']} rows, {audit['test_ids']['count']} test source images, "
                  f"{audit['leakage']['rows']} leaked rows (by reason: {reasons}); near duplicates "
                  f"searched within {audit['phash_hamming']} bits of a 64-bit pHash.")
    return f"""## Lineage and leakage audit

Every row names the source photos it derives from (`source_ids`; for semantic rows, every photo
the models saw). The rule ({_rule_name(f)}): {_rule_summary(f)}, and near duplicates across splits
count as leakage too. Re-check it from the data alone:

```bash
python -m builder audit {f.repo} --revision v{f.cfg.version}
```

(`--test-ids FILE` names your own test photos, one source id a line, instead of the test split the data implies.)

{result}{_rules_line(f)}"""


def _rule_name(f: CardFacts) -> str:
    return "the paper's" if f.cfg.curation.leakage_rule == "paper" else "strict, the toolkit's default"


def _rule_summary(f: CardFacts) -> str:
    if f.cfg.curation.leakage_rule == "paper":
        return ("no lesion map whose donor is a test image, and no semantic image whose (disease, healthy "
                "prompt) pair reconstructs one, is used in training")
    return "no synthetic derived from a test image may be used in training"


RULE_TEXT = {
    "strict": "**strict**: nothing derived from a held-out photo is trained on (a lesion map is held out when its "
              "base or its donor is a held-out photo, a semantic image when its healthy prompt or a model that "
              "made it saw one)",
    "paper": "**the paper's**: a lesion map is held out when its donor is a held-out photo (its base may be one), a "
             "semantic image when its (disease, healthy prompt) pair reconstructs a held-out photo (the prompt was "
             "made from a held-out photo of that disease); rows derived from a held-out photo in another role are "
             "trained on",
}


def _rules_line(f: CardFacts) -> str:
    """The rule this version applied, and the synthetic rows per split under it and under the other."""
    if not f.rules:
        return ""
    applied = f.cfg.curation.leakage_rule
    other = next(r for r in RULE_TEXT if r != applied)
    mine, theirs = f.rules[applied], f.rules[other]
    cells = "; ".join(f"{s} {mine[s]:,} ({other} rule: {theirs[s]:,})" for s in SPLITS)
    audit = " (`audit` checks it by default; `--rule strict` checks the strict one)" if applied == "paper" else ""
    kinds = [f"{kind}: " + ", ".join(f"{s} {c[applied][s]:,} ({c[other][s]:,})" for s in SPLITS)
             for kind, c in sorted((f.rules.get("by_kind") or {}).items()) if c[applied] != c[other]]
    differ = f" Where the rules differ, rows per split under it (under the {other} rule): {'; '.join(kinds)}." \
        if kinds else ""
    return (f"\n\nRule applied: {RULE_TEXT[applied]}{audit}. Synthetic rows per split under it: {cells}.{differ} "
            f"The {other} rule is not applied; its counts are shown for comparison.")


def terms(f: CardFacts) -> str:
    lic = card_license(f.sources)
    gated = any(s.gated_prompt for s in f.sources)
    lines = ["## Terms", "", f"Licence: `{lic}`; the full terms are in [LICENSE.md](LICENSE.md)."]
    if gated:
        lines.append("Access is gated on the Hub: requesting it means agreeing to those terms.")
    for s in f.sources:
        lines += ["", f"**{s.title}**: {s.terms}"]
    return "\n".join(lines)


def bias(f: CardFacts) -> str:
    items = rai.biases(f.sources, f.kinds) + rai.limitations(f.sources, f.kinds)
    return "## Bias, risks and limitations\n\n" + "\n".join(f"- {x}" for x in items)


def citations(f: CardFacts) -> str:
    keys = ["cgddi"] + [k for s in f.sources for k in s.citations if k != "cgddi"]
    entries = "\n".join(CITATIONS[k] for k in dict.fromkeys(keys))
    return (f"## Citations\n\n```bibtex\n{entries}\n```\n\ncgDDI's DOI is not known to the toolkit (the entry gives "
            "its arXiv id).")


CITATIONS = {
    "cgddi": """@inproceedings{carrion2026cgddi,
  title         = {Controllable Generation of Diverse Dermatological Imagery for Fair and Efficient Malignancy Classification},
  author        = {Carri{\\'o}n, H{\\'e}ctor and Norouzi, Narges},
  booktitle     = {Medical Image Computing and Computer Assisted Intervention (MICCAI)},
  series        = {Lecture Notes in Computer Science},
  publisher     = {Springer},
  year          = {2026},
  eprint        = {2607.12987},
  archivePrefix = {arXiv}
}""",
    "ddi": """@article{daneshjou2022ddi,
  title   = {Disparities in dermatology AI performance on a diverse, curated clinical image set},
  author  = {Daneshjou, Roxana and Vodrahalli, Kailas and Novoa, Roberto A. and others},
  journal = {Science Advances},
  volume  = {8},
  number  = {32},
  year    = {2022}
}""",
    "sddi": """@misc{fedd_sddi,
  title  = {FEDD: Fair, Efficient, and Diverse Diffusion-based Lesion Segmentation and Malignancy Classification},
  author = {Carri{\\'o}n, H{\\'e}ctor and Norouzi, Narges},
  note   = {https://github.com/hectorcarrion/FEDD}
}""",
    "fitzpatrick17k": """@inproceedings{groh2021fitzpatrick,
  title     = {Evaluating Deep Neural Networks Trained on Clinical Images in Dermatology with the Fitzpatrick 17k Dataset},
  author    = {Groh, Matthew and Harris, Caleb and Soenksen, Luis and Lau, Felix and Han, Rachel and Kim, Aerin and Koochek, Arash and Badri, Omar},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition Workshops (CVPRW)},
  year      = {2021}
}""",
    "dermsynth3d": """@article{sinha2024dermsynth3d,
  title   = {DermSynth3D: Synthesis of in-the-wild Annotated Dermatology Images},
  author  = {Sinha, Ashish and Kawahara, Jeremy and Pakzad, Arezou and Abhishek, Kumar and Ruthven, Matthieu and Ghorbel, Enjie and Kacem, Anis and Aouada, Djamila and Hamarneh, Ghassan},
  journal = {Medical Image Analysis},
  year    = {2024}
}""",
}
