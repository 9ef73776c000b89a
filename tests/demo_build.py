"""The session's shared demo build (the `demo_v11` fixture in tests/conftest.py) and its helpers.

`build_demo` builds a version from the embedded demo source as `python -m builder build --version V
--out OUT` does (default options: all cores). `copy_out` copies a build's whole --out folder (the
version and its `.work/` stages) for a test that writes into it. `tree_digest` maps every file under a
folder to its sha256; the fixture compares it at the end of the session to catch a test that wrote
into the shared build instead of a copy.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path


def build_demo(version: str, out: Path):
    """BuildResult of `version` built from the demo source into `out` (the version is `out/<version>`)."""
    from builder.build.pipeline import BuildOptions, build
    from builder.core.config import load_config

    return build(load_config(version), BuildOptions(out=out))


def copy_out(result, dest: Path) -> Path:
    """Copy the --out folder behind `result` (version folder and `.work/`) to `dest`; returns `dest`."""
    shutil.copytree(result.out_dir.parent, dest, symlinks=True)
    return dest


def tree_digest(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under `root`."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}
