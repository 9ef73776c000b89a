"""Build a dataset version end to end: generation -> curation -> shards + card + manifest.

The version's config (builder/configs/<version>.yaml) fixes all content; flags change only where
and how it runs. With no --source the embedded demo source is used (no data, GPU or network needed).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from builder.cli.args import COUNT


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--version", required=True, help="config version to build, e.g. 1.1 (builder/configs/<version>.yaml)")
    p.add_argument("--source", type=Path, action="append",
                   help="source folder (DDI layout: ddi_metadata.csv + PNGs; Fitzpatrick17k layout: metadata.csv + "
                        "images/); default: demo source. Repeat it to build over several sources at once "
                        "(e.g. DDI and Fitzpatrick17k): ids keep each source's prefix, each keeps its own holdout")
    p.add_argument("--source-name", action="append",
                   help="prefix of source ids (default: the source's layout, ddi or fitz17k; the embedded demo "
                        "source is demo); with several --source: none, or one per --source in the same order")
    p.add_argument("--masks", type=Path, action="append",
                   help="folder of masks, sDDI <stem>.npy or Fitzpatrick17k <md5>_lesions.png (default: "
                        "<source>/masks); with several --source: none, or one per --source in the same order")
    p.add_argument("--out", "--build-out", type=Path, default=Path("out"), dest="out",
                   help="build root: the version lands in <out>/<version>/, its steps in <out>/.work/<version>/ "
                        "(the same folder other commands call --build-out; default: out)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--workers", type=COUNT, help="CPU worker processes for ingest and hashing (default: all cores)")
    p.add_argument("--limit", type=COUNT, help="ingest only the first N source rows (smoke runs)")
    p.add_argument("--cpu-stand-in", action="store_true",
                   help="run the version's CPU stand-in healthy generator (healthy.stand_in) instead of its model "
                        "on a --source; the embedded demo source always does. The card, manifest and rows say so")
    p.add_argument("--decisions", type=Path,
                   help="a review's decisions CSV (`review --decisions FILE`): discarded healthy images, automatic "
                        "masks, lesion maps and semantic images are left out, with what was derived from them; "
                        "the card reports the review and the manifest lists the file's sha256")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing version whose content would change (stages whose inputs did not "
                        "change are still reused; a rerun always reuses finished shards with matching fingerprints)")


def _one_or_all(given: list | None):
    """A repeatable flag's values: None, the value given once, or all of them in order (several sources)."""
    return None if not given else given[0] if len(given) == 1 else tuple(given)


def run(args: argparse.Namespace) -> int:
    from builder.build import BuildOptions, build
    from builder.core.config import load_config
    from builder.core.progress import say

    cfg = load_config(args.version)
    t0 = time.perf_counter()
    result = build(cfg, BuildOptions(out=args.out, source=_one_or_all(args.source), masks=_one_or_all(args.masks),
                                     source_name=_one_or_all(args.source_name), device=args.device,
                                     workers=args.workers, overwrite=args.overwrite, limit=args.limit,
                                     decisions=args.decisions, stand_in=args.cpu_stand_in))
    say(*(f"  {st['stage']:<14} done={st.get('done', 0):<6} skipped={st.get('skipped', 0):<6} "
          f"rejected={st.get('rejected', {})}"
          + (f"  {result.decisions[st['stage']]}" if result.decisions.get(st["stage"]) else "")
          for st in result.stages))
    for st in result.stages:
        if st.get("delivery"):
            from generation.lesion_map.plan import delivery_summary

            say(delivery_summary(st["delivery"]))
    say("", result.table(), "")
    print(f"built cgDDI v{cfg.version}: {len(result.records)} rows in {len(result.files)} shards, "
          f"{time.perf_counter() - t0:.1f}s -> {result.out_dir}")
    return 0
