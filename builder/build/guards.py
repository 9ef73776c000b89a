"""A published version is immutable: the build's fingerprint, and the guards that refuse to replace a version
built from another config or source without --overwrite (checked before any step changes the work folder)."""
from __future__ import annotations

import json
from pathlib import Path

from builder.core.config import BuildConfig
from builder.core.errors import BuildError
from builder.core.fingerprint import combine


def build_fingerprint(cfg: BuildConfig, source_info: dict) -> str:
    """The build's fingerprint: its content settings, its source's fingerprint and the toolkit version."""
    from builder.core.schema import TOOLKIT_VERSION

    return combine("build", cfg.config_hash(), source_info.get("fingerprint"), TOOLKIT_VERSION)


def guard_fingerprint(out_dir: Path, cfg: BuildConfig, source_info: dict, fingerprint: str,
                       overwrite: bool) -> None:
    """A published version built from another source is refused before any generation (not after)."""
    manifest = out_dir / "manifest.json"
    if overwrite or not manifest.exists():
        return
    old = json.loads(manifest.read_text())
    old_fp = old.get("build_fingerprint")
    if old_fp is not None and old_fp != fingerprint:
        was = old.get("source") or {}
        raise BuildError(f"{out_dir} holds version {cfg.version} built from source {was.get('name')!r} "
                         f"(fingerprint {was.get('fingerprint')}), not from source {source_info['name']!r} "
                         f"(fingerprint {source_info['fingerprint']}); published versions are immutable: "
                         "pass --overwrite to replace it, or build into another --out")


def guard_existing(out_dir: Path, cfg: BuildConfig, overwrite: bool) -> None:
    """A version is immutable: rebuilding it from another config needs --overwrite (checked before any stage)."""
    manifest = out_dir / "manifest.json"
    if manifest.exists() and not overwrite:
        old = json.loads(manifest.read_text()).get("config_hash")
        if old != cfg.config_hash():
            raise BuildError(f"{out_dir} holds version {cfg.version} built from another config "
                             f"(hash {old}, now {cfg.config_hash()}); pass --overwrite to replace it")
