"""Dataset card (README.md) and LICENSE.md: Hub YAML (configs, dataset_info, licence by source, gating, tags) and the prose."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from builder.core.config import BuildConfig
from builder.core.schema import KINDS, SPLITS, Record
from cards import artefacts, directions, photos, text, usage
from cards.review import review
from cards.sources import card_license, gated, license_md, sources_of

# The order of the card's prose sections; a new section is a function `f(CardFacts) -> str` added here.
SECTIONS = (text.summary, text.source, text.source_pixels, text.how_built, text.structure, text.splits,
            photos.section, directions.section, artefacts.section, text.delivery, review, text.figures,
            text.lineage, usage.usage, text.terms, text.bias, text.citations)

# The Hub's `size_categories` (huggingface_hub.DatasetCardData): upper bound -> name; above the last, n>1T.
SIZE_CATEGORIES = ((10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M"),
                   (10**7, "1M<n<10M"), (10**8, "10M<n<100M"), (10**9, "100M<n<1B"), (10**10, "1B<n<10B"),
                   (10**11, "10B<n<100B"), (10**12, "100B<n<1T"))
BASE_TAGS = ("dermatology", "medical", "synthetic", "fairness", "skin-tone")


def size_category(n: int) -> str:
    """The Hub's `size_categories` bucket for n rows (n = 1,000 is `1K<n<10K`, as the Hub's own tools say)."""
    for limit, name in SIZE_CATEGORIES:
        if n < limit:
            return name
    return "n>1T"


def card_facts(cfg: BuildConfig, records: list[Record], plots: list[str] = (), audit: dict | None = None,
               repo_id: str | None = None, pixels: dict | None = None,
               source_info: dict | None = None, delivery: dict | None = None,
               generator_entries: dict | None = None, review: dict | None = None,
               stand_in: dict | None = None, rules: dict | None = None,
               fill_artefacts: dict | None = None) -> text.CardFacts:
    """What the card and croissant.json may state about this build, gathered once.

    `generator_entries`: builder.core.backends.card_entries(cfg), what each backend says of itself;
    `review`: the human review's facts (builder.build.review), when the build honoured decisions;
    `fill_artefacts`: what the fill artefact detectors flagged (builder.build.fill_artefacts)."""
    return text.CardFacts(cfg=cfg, records=list(records), generators=generators(records),
                          generator_entries=dict(generator_entries or {}),
                          sources=sources_of(records), plots=tuple(plots), pixels=pixels,
                          source_info=source_info, audit=audit, delivery=delivery, review=review, stand_in=stand_in, rules=rules,
                          artefacts=fill_artefacts,
                          repo=repo_id or cfg.publish.repo_id or "ORG/NAME")


def generators(records: list[Record]) -> list[tuple[str, str, str, str, int]]:
    """(kind, backend, model id, revision, rows) for every generator met in the records."""
    c = Counter((r.kind, r.generator.backend if r.generator else "-",
                 (r.generator.model_id if r.generator else None) or "-",
                 (r.generator.revision if r.generator else None) or "-") for r in records)
    return [(*k, n) for k, n in sorted(c.items())]


def tags(f: text.CardFacts) -> list[str]:
    """Base tags, plus one per generator family that actually produced rows."""
    out = list(BASE_TAGS)
    tagged = [(e.tags, m.lower()) for k, b, m, _, _ in f.generators
              if (e := f.generator_entries.get((k, b))) is not None and e.tags]
    out += list(dict.fromkeys(t for tags_, _ in tagged for t in tags_))  # the generators' libraries
    if any("stable-diffusion" in m for _, m in tagged):
        out.append("stable-diffusion")
    if "healthy" in f.kinds:
        out.append("inpainting")
    if any(r.generator and r.generator.adapters for r in f.records if r.kind == "semantic"):
        out += ["textual-inversion", "lora"]
    if f.demo_only:
        out.append("demo")
    return out


def card_yaml(files: list[dict], f: text.CardFacts):
    """Hub metadata: `configs` (one per kind plus `all`, the default), `dataset_info`, licence and gating."""
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCardData

    from builder.core.schema import version_disease_names

    out_configs, infos = _configs(files, version_disease_names(f.records))
    lic = card_license(f.sources)
    prompt, fields = gated(f.sources)
    extra = {"extra_gated_prompt": prompt, "extra_gated_fields": fields} if prompt else {}
    if lic == "other":
        extra.update(license_name="-".join(s.name for s in f.sources) + "-terms", license_link="LICENSE.md")
    prompted = any(r.prompt and r.generator and getattr(f.generator_entries.get((r.kind, r.generator.backend)),
                                                        "prompted", False) for r in f.records)
    tasks = ["image-classification"] + (["text-to-image"] if prompted else [])
    data = DatasetCardData(
        license=lic, pretty_name=f"cgDDI v{f.cfg.version}", configs=out_configs, language=["en"],
        task_categories=tasks, task_ids=["multi-class-image-classification"],
        size_categories=[size_category(sum(x["rows"] for x in files if "config" in x))],
        source_datasets=list(dict.fromkeys(d for s in f.sources for d in s.source_datasets)),
        tags=tags(f), **extra)
    DatasetInfosDict(infos).to_dataset_card_data(data)
    return data


def _configs(files: list[dict], diseases: tuple[str, ...] | None = None) -> tuple[list[dict], dict]:
    import datasets
    from datasets.info import DatasetInfo

    from builder.core.schema import features

    shards = [f for f in files if "config" in f]
    configs = sorted({f["config"] for f in shards}, key=KINDS.index)
    out_configs, infos = [], {}
    for name in ["all"] + configs:
        mine = [f for f in shards if name == "all" or f["config"] == name]
        splits = [s for s in SPLITS if any(f["split"] == s for f in mine)]
        data_files = [{"split": s, "path": sorted({f"data/{f['config']}/{s}-*.parquet"
                                                   for f in mine if f["split"] == s})}
                      for s in splits]
        entry = {"config_name": name, "data_files": data_files}
        if name == "all":
            entry["default"] = True
        out_configs.append(entry)
        split_dict = datasets.SplitDict()
        for s in splits:
            sel = [f for f in mine if f["split"] == s]
            split_dict.add(datasets.SplitInfo(name=s, num_bytes=sum(f["bytes"] for f in sel),
                                              num_examples=sum(f["rows"] for f in sel)))
        infos[name] = DatasetInfo(features=features(diseases), splits=split_dict, config_name=name)
    return out_configs, infos


def write_card(out_dir: Path, files: list[dict], facts: text.CardFacts) -> Path:
    """Write README.md: YAML front matter and the prose sections."""
    from huggingface_hub import DatasetCard

    data = card_yaml(files, facts)
    card = DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{prose(facts)}")
    path = out_dir / "README.md"
    path.write_text(str(card) + ("" if str(card).endswith("\n") else "\n"))
    return path


def write_license(out_dir: Path, facts: text.CardFacts) -> str:
    """LICENSE.md: the terms of every source the build derives from; returns its relative path."""
    (out_dir / "LICENSE.md").write_text(license_md(facts.sources))
    return "LICENSE.md"


def prose(facts: text.CardFacts) -> str:
    parts = (section(facts) for section in SECTIONS)
    return "\n\n".join(p.strip() for p in parts if p.strip()) + "\n"
