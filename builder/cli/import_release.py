"""`import-release SOURCE`: read what cgDDI released, by its file names, and clean it for a holdout.

SOURCE is the release as a local folder, or its Hub dataset id with --revision. Every file is
indexed into OUT/release_index.csv (file, kind, base_id, donor_id, disease, donor_tone, split,
reason): a lesion map `{base}_with_{disease}_from_{donor tone}_{donor}.png` gets its DDI base and
donor (`ddi:<stem>`), its joined disease and its split; any other name is listed with the reason
it was not parsed. The held-out photos are PatchAlign24's (sklearn's train_test_split over the
metadata table in row order, random_state 12140420; --holdout-seed N: the same call with N) or
a --test-ids file. The rule decides a lesion map's split: strict (default) makes it test when its
base or donor is held out, paper when its donor is. OUT also gets leakage_report.json (what each
rule keeps) and train/test CSVs for PatchAlign24 and FairDisCo (OUT/patchalign, OUT/fairdisco) in
`export`'s encodings: train = train lesion maps + the train DDI photos, test = held-out DDI photos;
`hasher` is a release path or a DDI file name, so their image folder must hold both. Names are
streamed: no image is read unless --to-version writes the release as a toolkit version
(OUT/<NAME>: Hub-layout Parquet, typed lineage, card, manifest), which `audit` checks.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="the release: a local folder, or a Hub dataset id (with --revision)")
    p.add_argument("--revision", default=None, help="Hub revision (tag, branch or commit) of a Hub SOURCE")
    p.add_argument("--metadata", type=Path, required=True, help="DDI's ddi_metadata.csv (lineage and holdout)")
    p.add_argument("--out", type=Path, required=True, help="output folder (index, report, trainer CSVs)")
    p.add_argument("--rule", choices=["strict", "paper"], default="strict",
                   help="leakage rule: strict = base or donor held out makes a file test; paper = the donor "
                        "(default: %(default)s)")
    held = p.add_mutually_exclusive_group()
    held.add_argument("--holdout-seed", type=int, default=None, metavar="N",
                      help="PatchAlign24's holdout call with random_state N (default: theirs, 12140420)")
    held.add_argument("--test-ids", type=Path, default=None, metavar="FILE",
                      help="held-out DDI ids (ddi:<stem>, one per line, or a splits.csv) instead of the holdout")
    p.add_argument("--to-version", default=None, metavar="NAME",
                   help="also write the lesion maps as toolkit version NAME under OUT (reads the images)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")


def run(args: argparse.Namespace) -> int:
    from builder.published.release.run import ImportOptions, import_release

    r = import_release(ImportOptions(args.source, args.metadata, args.out, revision=args.revision, rule=args.rule,
                                     holdout_seed=args.holdout_seed, test_ids=args.test_ids,
                                     to_version=args.to_version, overwrite=args.overwrite))
    kept = r["lesion_maps_by_rule"]
    print(f"indexed {r['files']} files {r['by_kind']}; rule {r['rule']}, {r['holdout']['test_ids']} held-out photos; "
          f"lesion maps strict {kept['strict']}, paper {kept['paper']}; see {args.out}/leakage_report.json"
          + (f"; version {args.to_version} in {r['version']['folder']}" if args.to_version else ""))
    return 0
