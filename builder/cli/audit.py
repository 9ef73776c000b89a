"""Audit a published version for leakage, from the data alone; exit 1 on leakage or integrity failure.

TARGET is a built version folder or a Hub dataset repo id (downloaded at --revision). Checks:
lineage columns against the test split (or --test-ids) under the version's leakage rule (or --rule),
exact and near (pHash) duplicates across splits, files against manifest.json (sha256), Parquet schema,
card split sizes. Prints balance tables and writes a JSON report: to --report, else into the version's work folder
(<out>/.work/<version>/audit_report.json for a folder <out>/<version>; for a Hub repo, a folder per
repo and revision under the user cache), never into the current directory.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from builder.cli.args import COUNT, HAMMING
from builder.cli.common import add_build_out, layout_of
from builder.core.errors import CgddiError
from builder.core.layout import VersionLayout


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", nargs="?", default=None,
                   help="version folder (e.g. out/1.1) or Hub repo id ORG/NAME; or give --version (and --build-out)")
    p.add_argument("--version", default=None, help="audit <build-out>/<version> (instead of TARGET)")
    add_build_out(p)
    p.add_argument("--revision", default=None, help="Hub revision when TARGET is a repo id, e.g. v1.1")
    p.add_argument("--test-ids", type=Path, default=None,
                   help="file of real test source ids, one per line, or a build's splits.csv (its test rows); "
                        "ids matching no source of the version are an error (default: inferred from the data)")
    p.add_argument("--rule", choices=["strict", "paper"], default=None,
                   help="leakage rule to check: strict (no train row derives from a test photo in any role) or "
                        "paper (a lesion map's donor, a semantic image's (disease, healthy prompt) pair decide); "
                        "default: the rule the version states in its manifest (strict when none)")
    p.add_argument("--phash-hamming", type=HAMMING, default=6,
                   help="near-duplicate threshold in bits of a 64-bit pHash (default: %(default)s)")
    p.add_argument("--workers", type=COUNT, default=1, help="processes for decoding + pHash (default: %(default)s)")
    p.add_argument("--report", type=Path, default=None,
                   help="where to write the JSON report (default: <out>/.work/<version>/audit_report.json "
                        "beside a version folder <out>/<version>; for a Hub repo, under the user cache)")


def resolve_target(target: str, revision: str | None) -> Path:
    """A local version folder as is; a repo id is downloaded (manifest, card, data) at `revision`.
    A mistyped folder or an unreachable Hub is a CgddiError (one line, exit 2), not a traceback."""

    path = Path(target)
    if path.is_dir():
        if not (path / "manifest.json").is_file() and not (path / "data").is_dir():
            inside = sorted(p.parent.name for p in path.glob("*/manifest.json"))
            hint = f"; it holds versions {', '.join(inside)}: pass e.g. {path / inside[0]}" if inside else ""
            raise CgddiError(f"{path} is not a built version folder (no manifest.json, no data/){hint}")
        return path
    parent = path.parent
    if target.count("/") != 1 or target.startswith((".", "/", "~")) or (parent != Path(".") and parent.is_dir()):
        there = sorted(p.parent.name for p in parent.glob("*/manifest.json")) if parent.is_dir() else []
        hint = f" ({parent} holds versions {', '.join(there)})" if there else ""
        raise CgddiError(f"no folder {target}{hint}; pass a built version folder (e.g. out/1.1) or a Hub "
                         "dataset repo id ORG/NAME")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(target, repo_type="dataset", revision=revision))
    except Exception as e:  # noqa: BLE001 (hub, httpx and OS errors alike: one line naming the target)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise CgddiError(f"{target}{'@' + revision if revision else ''}: not a local folder, and the Hub did not "
                         f"serve it ({type(e).__name__}: {first}); check the repo id, --revision, the network "
                         "and HF_ENDPOINT / HF_TOKEN") from e


def default_report(target: str, revision: str | None) -> Path:
    """The audited version's work folder: beside a local version folder, in the user cache for a Hub repo."""
    if Path(target).is_dir():
        return VersionLayout.of_folder(Path(target).resolve()).audit_report
    import os

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cgddi-toolkit" / "audit"
    return cache / f"{target.replace('/', '__')}@{revision or 'main'}" / "audit_report.json"


def write_report(path: Path, doc: dict, default: bool) -> None:
    """Write the report by a rename, so that a link planted at its name is replaced, never written
    through; the default place (beside a version folder, which may arrive with links in it) must
    not reach out of its build root through a linked folder either."""
    from builder.core.errors import CgddiError
    from builder.core.layout import inside
    from builder.core.store import atomic_write

    if default and Path(path).parent.exists() and not inside(Path(path).parent, Path(path).parents[2]):
        raise CgddiError(f"{Path(path).parent} is a link out of {Path(path).parents[2]}; the audit writes no report "
                         "through it: remove the link, or pass --report FILE")
    atomic_write(Path(path), (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())


def run(args: argparse.Namespace) -> int:
    from builder.published.audit import audit_folder, format_balance
    from builder.core.progress import say
    from builder.core.splits_file import read_test_ids
    from builder.core.text import printable

    if (args.target is None) == (args.version is None):
        raise CgddiError("give the version to audit once: a TARGET folder or repo id, or --version V "
                         "(with --build-out DIR, default out)")
    if args.target is None:
        args.target = str(layout_of(args).version_dir)
    folder = resolve_target(args.target, args.revision)
    test_ids = read_test_ids(args.test_ids) if args.test_ids else None
    target = f"{args.target}@{args.revision}" if args.revision else args.target
    report = audit_folder(folder, test_ids=test_ids, phash_hamming=args.phash_hamming, target=target,
                          workers=args.workers, rule=args.rule)
    doc = report.to_json()
    report_path = args.report or default_report(args.target, args.revision)
    write_report(report_path, doc, default=args.report is None)
    say(f"audit of {target}: {report.rows} rows, test sources {report.test_ids} ({report.test_ids_source}), "
        f"{report.rule} leakage rule",
        format_balance(report.balance))
    for p in report.integrity:  # paths and details quote the data: printed with control characters escaped
        print(f"INTEGRITY {p['problem']}: {printable(p['path'])}: {printable(p['detail'])}")
    for reason, n in doc["leakage"]["by_reason"].items():
        print(f"LEAK {reason}: {n}")
    print(f"{'CLEAN' if report.ok else 'FAILED'}: {doc['leakage']['rows']} leaked rows, "
          f"{len(report.integrity)} integrity problems; report: {report_path}")
    return 0 if report.ok else 1
