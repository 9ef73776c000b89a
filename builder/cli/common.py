"""Flags that mean the same in every command: the build root (`--build-out`), a version folder
(`--version` under it, or `--folder`), and `-q`/`-v` (accepted before or after the subcommand)."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

DEFAULT_BUILD_OUT = Path("out")
log = logging.getLogger(__name__)


def add_output_flags(p: argparse.ArgumentParser) -> None:
    """`-v`/`-q` on a subcommand too (`build --version 1.1 -q`); given there, they win over the top level's."""
    p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                   help="debug logging for the toolkit, info for libraries (-vv: debug for libraries too)")
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="print only errors and the final summary (no progress bars, no tables)")


def add_build_out(p: argparse.ArgumentParser, *, out_alias: bool = False) -> None:
    """`--build-out DIR`: the build root holding `<version>/` and `.work/<version>/` (`builder.core.layout`).
    `out_alias`: the command used to call it `--out` (push); that spelling still works, with a warning."""
    p.add_argument("--build-out", type=Path, default=DEFAULT_BUILD_OUT, dest="build_out",
                   help="build root holding <version>/ and .work/<version>/ (default: %(default)s)")
    if out_alias:
        p.add_argument("--out", type=Path, dest="legacy_out", default=None,
                       help="old name of --build-out for this command (still accepted)")


def build_root(args: argparse.Namespace) -> Path:
    """The build root, from `--build-out` (or a command's old `--out` spelling of it)."""
    legacy = getattr(args, "legacy_out", None)
    if legacy is not None:
        log.warning("--out is the old name of --build-out here (the build root); use --build-out %s", legacy)
        return Path(legacy)
    return Path(args.build_out)


def layout_of(args: argparse.Namespace):
    """The `VersionLayout` a command's `--version` and build root name (the version name is checked)."""
    from builder.core.layout import VersionLayout

    return VersionLayout(build_root(args), args.version)
