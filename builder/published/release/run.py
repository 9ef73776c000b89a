"""The whole `import-release`: resolve the source, list it, index it, split it, report, and optionally
publish it as a toolkit version."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from builder.core.errors import ReleaseError
from builder.published.release import index as ix
from builder.published.release.source import ReleaseSource, list_files, resolve


@dataclasses.dataclass(frozen=True)
class ImportOptions:
    source: str
    metadata: Path
    out: Path
    revision: str | None = None
    rule: str = "strict"
    holdout_seed: int | None = None
    test_ids: Path | None = None
    to_version: str | None = None
    overwrite: bool = False


def import_release(opts: ImportOptions) -> dict:
    """Index, split and report into `opts.out` (holding its lock); returns the leakage report."""
    from builder.core.lock import hold

    if opts.rule not in ix.RULES:
        raise ReleaseError(f"--rule {opts.rule!r}: expected one of {', '.join(ix.RULES)}")
    if opts.holdout_seed is not None and opts.test_ids is not None:
        raise ReleaseError("--holdout-seed and --test-ids both choose the held-out photos; give one")
    if opts.to_version is not None:
        from builder.core.layout import check_version_name

        check_version_name(opts.to_version)
    src = resolve(opts.source, opts.revision)
    out = Path(opts.out).resolve()
    if src.folder is not None and (out == src.folder or src.folder in out.parents):
        raise ReleaseError(f"--out {opts.out} lies inside the release folder {src.folder}; its files would be "
                           "indexed as the release's: choose a folder outside it")
    with hold(out, command="import-release"):
        return _import(opts, src, out)


def _import(opts: ImportOptions, src: ReleaseSource, out: Path) -> dict:
    photos = ix.read_photos(opts.metadata)
    hold = ix.holdout(Path(opts.metadata), photos, opts.holdout_seed, opts.test_ids)
    _prepare(out, opts.overwrite)
    files = list_files(src)
    if not files:
        raise ReleaseError(f"release {opts.source} holds no files")
    counts = ix.write_index(files, out, photos, hold, opts.rule)
    del files
    report = {"source": src.describe(), "rule": opts.rule, "holdout": hold.describe(), **counts,
              "rules": {"strict": "a lesion map is test when its base or its donor photo is held out",
                        "paper": "a lesion map is test when its donor photo is held out"},
              "trainer_csvs": ix.write_trainer_csvs(out, photos, hold)}
    if opts.to_version is not None:
        from builder.published.release.version import write_version

        report["version"] = write_version(out, src, photos, hold, opts.rule, opts.to_version, report,
                                          overwrite=opts.overwrite)
    ix.write_test_ids(out, hold)
    ix.write_report(out, report)
    return report


def _prepare(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ReleaseError(f"{out} exists and is not empty; pass --overwrite or choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
