"""manifest.json: what a built version contains (files with sha256), how it was made, counts per stage."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
from importlib import metadata
from pathlib import Path

from builder.core.config import BuildConfig
from builder.core.errors import BuildError
from builder.core.schema import TOOLKIT_VERSION
from builder.core.store import atomic_write

LIBRARIES = ("datasets", "huggingface_hub", "pyarrow", "polars", "pillow", "numpy", "opencv-python-headless",
             "torch", "diffusers", "transformers", "peft", "accelerate", "imagehash", "faiss-cpu")


def library_versions() -> dict[str, str | None]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def write_manifest(out_dir: Path, cfg: BuildConfig, files: list[dict], stages: list[dict],
                   extra: dict | None = None) -> Path:
    """Write manifest.json (sorted keys, stable order): the build's record of itself."""
    manifest = {
        "version": cfg.version,
        "config_hash": cfg.config_hash(),
        "config": cfg.to_dict(),
        "toolkit_version": TOOLKIT_VERSION,
        "python": platform.python_version(),
        "libraries": library_versions(),
        "files": sorted(files, key=lambda f: f["path"]),
        "counts": _counts(files),
        # timings vary run to run; the manifest must not (same config -> same bytes)
        "stages": [{k: v for k, v in st.items() if k != "seconds"} for st in stages],
        **(extra or {}),
    }
    path = out_dir / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=list) + "\n")
    return path


def read_manifest(out_dir: Path) -> dict:
    return json.loads((Path(out_dir) / "manifest.json").read_text())


def _counts(files: list[dict]) -> dict:
    """Rows per config and split, from the shard entries (`all` = every config)."""
    out: dict[str, dict[str, int]] = {}
    for f in files:
        if "config" not in f:
            continue
        for config in ("all", f["config"]):
            out.setdefault(config, {}).setdefault(f["split"], 0)
            out[config][f["split"]] += f["rows"]
    return out


def file_entry(root: Path, rel: str, **extra) -> dict:
    """Manifest entry of one file: path, bytes, sha256 (streamed: shards can be 500 MB)."""
    h = hashlib.sha256()
    with open(root / rel, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return {"path": rel, "bytes": (root / rel).stat().st_size, "sha256": h.hexdigest(), **extra}


def install_version(staging: Path, out_dir: Path, overwrite: bool) -> None:
    """Move a finished staging folder to `out_dir`. A version is immutable: an existing one with other
    file content is refused unless `overwrite` (identical content is simply replaced). Only a version
    (a folder with manifest.json, or an empty one) is ever replaced, and so that a failure at any
    point leaves it whole: the old folder is renamed aside, the new one renamed in, then the old deleted."""
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        shutil.rmtree(staging)
        raise BuildError(f"{out_dir} is a link or a file, not a version folder; the build replaces nothing "
                         "else: remove it or build into another --out")
    old_manifest = out_dir / "manifest.json"
    if out_dir.is_dir() and any(out_dir.iterdir()) and not old_manifest.is_file():
        shutil.rmtree(staging)
        raise BuildError(f"{out_dir} holds files that no build made (no manifest.json); the build never deletes "
                         "them: move them away, or build into another --out")
    if old_manifest.is_file() and not overwrite:
        differ = _differing_files(out_dir, staging)
        if differ:
            shutil.rmtree(staging)
            raise BuildError(f"{out_dir} already holds version {out_dir.name} with other content "
                             f"({len(differ)} files differ, e.g. {differ[:3]}); published versions are "
                             "immutable: pass --overwrite to replace it, or build a new version")
    swap_in(staging, out_dir)


def swap_in(staging: Path, out_dir: Path) -> None:
    """Replace `out_dir` by `staging` with two renames (old aside, new in), then delete the old one: an
    error puts the old one back; a kill between the renames is undone by the next `recover_version`."""
    recover_version(out_dir, staging.parent)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    aside = staging.parent / f".old-{out_dir.name}.{os.getpid()}"
    if out_dir.exists():
        os.replace(out_dir, aside)
    try:
        os.replace(staging, out_dir)
    except BaseException:
        if aside.exists() and not out_dir.exists():
            os.replace(aside, out_dir)  # the old version back in place, whole
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _differing_files(out_dir: Path, staging: Path) -> list[str]:
    try:
        old = {f["path"]: f["sha256"] for f in read_manifest(out_dir)["files"]}
    except (ValueError, KeyError, TypeError):  # an unreadable manifest: every file counts as different
        old = {}
    new = {f["path"]: f["sha256"] for f in read_manifest(staging)["files"]}
    return sorted(p for p in set(old) | set(new) if old.get(p) != new.get(p)) or ([] if old else ["manifest.json"])


def recover_version(out_dir: Path, staging_root: Path | None = None) -> None:
    """Versions renamed aside by runs that died: put back when the run died between its two renames
    (`out_dir` missing), else deleted (the new version was in place). Call it holding the version's lock."""
    from builder.core.lock import pid_alive

    root = staging_root or out_dir.parent / ".staging"
    for old in sorted(root.glob(f".old-{out_dir.name}.*")) if root.is_dir() else []:
        pid = old.name.rsplit(".", 1)[1]
        if not pid.isdigit() or pid_alive(int(pid)):
            continue
        if not out_dir.exists() and (old / "manifest.json").is_file():
            os.replace(old, out_dir)
        else:
            shutil.rmtree(old, ignore_errors=True)


def hardlinked_copy(folder: Path, staging: Path) -> Path:
    """A copy of a version whose files are hard links (no bytes copied); files rewritten there must be
    replaced by a rename (`atomic_write`), never written in place, or the original would change too."""
    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError:  # another filesystem, or links not supported: a real copy
            shutil.copy2(src, dst)

    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(folder, staging, copy_function=link, symlinks=True)
    return staging


def relist_files(out_dir: Path, paths: list[str]) -> Path:
    """Re-hash `paths` (added or changed after the build, e.g. by `evaluate`) into manifest.json."""
    manifest = read_manifest(out_dir)
    entries = {f["path"]: f for f in manifest["files"]}
    for rel in paths:
        entries[rel] = file_entry(out_dir, rel, **{k: v for k, v in entries.get(rel, {}).items()
                                                   if k not in ("path", "bytes", "sha256")})
    manifest["files"] = sorted(entries.values(), key=lambda f: f["path"])
    path = out_dir / "manifest.json"
    atomic_write(path, (json.dumps(manifest, indent=2, sort_keys=True, default=list) + "\n").encode())
    return path
