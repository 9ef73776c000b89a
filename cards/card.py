"""Dataset card (README.md): Hub YAML (`configs`, `dataset_info`) plus a prose summary of the build."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from builder.config import BuildConfig
from builder.schema import KINDS, SKIN_TONES, SPLITS, Record


def card_yaml(files: list[dict], cfg: BuildConfig) -> dict:
    """`configs` (one per kind plus `all`, the default, which reads the per-kind files) and `dataset_info`."""
    import datasets
    from datasets.info import DatasetInfo, DatasetInfosDict

    from builder.schema import features

    configs = sorted({f["config"] for f in files}, key=KINDS.index)
    out_configs, infos = [], {}
    for name in ["all"] + configs:
        mine = [f for f in files if name == "all" or f["config"] == name]
        splits = [s for s in SPLITS if any(f["split"] == s for f in mine)]
        data_files = [{"split": s, "path": sorted({f"data/{f['config']}/{s}-*.parquet" for f in mine if f["split"] == s})}
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
        infos[name] = DatasetInfo(features=features(), splits=split_dict, config_name=name)
    from huggingface_hub import DatasetCardData

    data = DatasetCardData(license="other", pretty_name=f"cgDDI v{cfg.version}", configs=out_configs,
                           task_categories=["image-classification"], tags=["dermatology", "synthetic", "fairness"])
    DatasetInfosDict(infos).to_dataset_card_data(data)
    return data


def write_card(out_dir: Path, cfg: BuildConfig, files: list[dict], records: list[Record]) -> Path:
    from huggingface_hub import DatasetCard

    data = card_yaml(files, cfg)
    body = _prose(cfg, records)
    card = DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}")
    path = out_dir / "README.md"
    card.save(path)
    return path


def _prose(cfg: BuildConfig, records: list[Record]) -> str:
    counts = Counter((r.kind, r.split, r.skin_tone) for r in records)
    lines = [f"# cgDDI v{cfg.version}", "",
             "Synthetic dermatology images built with the cgDDI toolkit: healthy skin (lesions "
             "inpainted away) and lesion-mapped images (real lesions moved onto healthy skin of "
             "another tone), with typed lineage on every row. No original source photo is included.",
             "", "## Rows per kind, split and skin tone", "",
             "| kind | split | " + " | ".join(SKIN_TONES) + " |", "|---|---|" + "---|" * len(SKIN_TONES)]
    for kind in KINDS:
        for split in SPLITS:
            row = [counts[(kind, split, t)] for t in SKIN_TONES]
            if any(row):
                lines.append(f"| {kind} | {split} | " + " | ".join(map(str, row)) + " |")
    lines += ["", "## Usage", "", "```python", "from datasets import load_dataset",
              f'ds = load_dataset("ORG/NAME", revision="v{cfg.version}")', "```", ""]
    return "\n".join(lines)
