"""Dataset card (README.md): Hub YAML (`configs`, `dataset_info`, license, tags, ...) and the prose."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from builder.core.config import BuildConfig
from builder.core.schema import KINDS, MALIGNANCY, SKIN_TONES, SPLITS, TOOLKIT_VERSION, Record
from cards import text

CONFIG_ORDER = ("all",) + KINDS


def size_category(n: int) -> str:
    """The Hub's `size_categories` bucket for n rows."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < limit:
            return name
    return "10M<n<100M"


def card_yaml(files: list[dict], cfg: BuildConfig, diseases: tuple[str, ...] | None = None):
    """`configs` (one per kind plus `all`, the default, which reads the per-kind files) and `dataset_info`."""
    import datasets
    from datasets.info import DatasetInfo, DatasetInfosDict
    from huggingface_hub import DatasetCardData

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
    rows = sum(f["rows"] for f in shards)
    data = DatasetCardData(
        license="other", license_name="cgddi-research-use", license_link="LICENSE.md",
        pretty_name=f"cgDDI v{cfg.version}", configs=out_configs, language=["en"],
        task_categories=["image-classification", "text-to-image"], size_categories=[size_category(rows)],
        source_datasets=["extended|ddi", "extended|sddi"],
        tags=["dermatology", "medical", "synthetic", "fairness", "skin-tone", "stable-diffusion"])
    DatasetInfosDict(infos).to_dataset_card_data(data)
    return data


def write_card(out_dir: Path, cfg: BuildConfig, files: list[dict], records: list[Record],
               plots: list[str] = (), audit: dict | None = None, repo_id: str | None = None,
               delivery: dict | None = None) -> Path:
    """Write README.md: YAML front matter and the prose sections of `cards/text.py`."""
    from huggingface_hub import DatasetCard

    from builder.core.schema import disease_names

    data = card_yaml(files, cfg, disease_names(r.disease for r in records))
    body = prose(cfg, records, list(plots), audit, repo_id or getattr(cfg.publish, "repo_id", None), delivery)
    card = DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}")
    path = out_dir / "README.md"
    path.write_text(str(card) + ("" if str(card).endswith("\n") else "\n"))
    return path


def write_license(out_dir: Path) -> str:
    """LICENSE.md, the file the card's `license_link` points at; returns its relative path."""
    (out_dir / "LICENSE.md").write_text(text.LICENSE)
    return "LICENSE.md"


def prose(cfg: BuildConfig, records: list[Record], plots: list[str], audit: dict | None,
          repo_id: str | None, delivery: dict | None = None) -> str:
    repo = repo_id or "ORG/NAME"
    parts = [text.summary(cfg, len(records), sorted({r.kind for r in records}, key=KINDS.index)),
             text.how_built(cfg, _generators(records), text.mask_counts(records)),
             text.STRUCTURE,
             "## Splits\n\nRows per kind, split, skin tone and malignancy (benign / malignant).\n\n"
             + split_table(records),
             text.delivery(delivery, cfg),
             _plots_section(plots),
             text.lineage(audit, cfg.version),
             text.usage(repo, cfg.version),
             text.TERMS, text.BIAS, text.CITATIONS]
    return "\n\n".join(p.strip() for p in parts if p.strip()) + "\n"


def _generators(records: list[Record]) -> list[tuple[str, str, str, str, int]]:
    """(kind, backend, model id, revision, rows) for every generator met in the records."""
    c = Counter((r.kind, r.generator.backend if r.generator else "-",
                 (r.generator.model_id if r.generator else None) or "-",
                 (r.generator.revision if r.generator else None) or "-") for r in records)
    return [(*k, n) for k, n in sorted(c.items())]


def split_table(records: list[Record]) -> str:
    """Markdown table: one row per kind x split, one column per tone with `benign / malignant`."""
    counts = Counter((r.kind, r.split, r.skin_tone, bool(r.malignant)) for r in records)
    head = "| kind | split | " + " | ".join(SKIN_TONES) + " | total |"
    lines = [head, "|---|---|" + "---:|" * (len(SKIN_TONES) + 1)]
    for kind in KINDS:
        for split in SPLITS:
            cells = [(counts[(kind, split, t, False)], counts[(kind, split, t, True)]) for t in SKIN_TONES]
            total = sum(b + m for b, m in cells)
            if total:
                lines.append(f"| {kind} | {split} | " + " | ".join(f"{b} / {m}" for b, m in cells)
                             + f" | {total} |")
    tone_totals = [sum(n for (_, _, t, _), n in counts.items() if t == tone) for tone in SKIN_TONES]
    lines.append("| **all** | | " + " | ".join(map(str, tone_totals)) + f" | {len(records)} |")
    return "\n".join(lines) + f"\n\nMalignancy classes: {', '.join(MALIGNANCY)}. Toolkit {TOOLKIT_VERSION}."


def _plots_section(plots: list[str]) -> str:
    if not plots:
        return ""
    lines = ["## Figures", ""]
    for p in plots:
        title = "Distributions" if "distribution" in p else "Samples: " + Path(p).stem.replace("samples_", "")
        lines += [f"**{title}**", "", f"![{title}]({p})", ""]
    return "\n".join(lines)
