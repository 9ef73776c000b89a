"""Where a version lives under a build root: the one place that names `<root>/<version>`, the work folder,
the staging folder and the lock, and that checks a version name before it becomes part of a path.

    <root>/<version>/                 the published version (shards, card, manifest)
    <root>/.work/<version>/           the build's stages, reports and caches (its lock lies beside it)
    <root>/.staging/<version>.<pid>/  a version being written, installed by one rename
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from builder.core.errors import ConfigError

# A version is a name, never a path: letters, digits, dots, dashes and underscores; not "." or "..".
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
WORK = ".work"
STAGING = ".staging"
# A file name taken from data (a sample id, a photo's name in a table): one path component, no dot first.
FILE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._ ()+,-]{0,199}$")


def check_version_name(version: str) -> str:
    """`version` if it is a plain name (e.g. 1.1, 1.2-rc1), else a ConfigError naming the value and the fix."""
    if not isinstance(version, str) or not VERSION_RE.match(version) or ".." in version:
        raise ConfigError(f"version {version!r} is not a version name: use letters, digits, '.', '-' or '_' "
                          "(e.g. 1.1), starting with a letter or digit, with no path separators or '..'")
    return version


def is_file_name(name) -> bool:
    """Whether `name` (a sample id, a table's photo name: names from data) can become one file inside
    its folder: no separators, no `..`, not hidden."""
    return isinstance(name, str) and bool(FILE_NAME_RE.match(name)) and ".." not in name


def is_relative_file_path(path) -> bool:
    """Whether `path` (a manifest entry, a card's data file) is a plain relative path below its folder:
    no leading `/`, no backslash, no empty, `.` or `..` part."""
    return (isinstance(path, str) and bool(path) and not path.startswith("/") and "\\" not in path
            and all(p not in ("", ".", "..") for p in path.split("/")))


def inside(path: str | Path, folder: str | Path) -> bool:
    """Whether `path`, with every symlink resolved, lies inside `folder` (resolved)."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents


@dataclasses.dataclass(frozen=True)
class VersionLayout:
    """The folders of one version under one build root."""

    root: Path
    version: str

    def __post_init__(self):
        check_version_name(self.version)
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def of_folder(cls, folder: str | Path) -> "VersionLayout":
        """The layout a published version folder `<root>/<version>` belongs to."""
        folder = Path(folder)
        return cls(folder.parent, folder.name)

    @property
    def version_dir(self) -> Path:
        return self.root / self.version

    @property
    def work(self) -> Path:
        return self.root / WORK / self.version

    @property
    def staging_root(self) -> Path:
        return self.root / STAGING

    def staging(self, pid: int) -> Path:
        return self.staging_root / f"{self.version}.{pid}"

    @property
    def splits_csv(self) -> Path:
        return self.work / "splits.csv"

    @property
    def audit_report(self) -> Path:
        return self.work / "audit_report.json"

    def check_no_links(self) -> "VersionLayout":
        """Refuse when the version folder, its work folder or the staging folder is a link: a run writes
        (and deletes) there, and must never do so through a link into another folder."""
        for path in (self.version_dir, self.root / WORK, self.work, self.staging_root):
            if path.is_symlink():
                raise ConfigError(f"{path} is a link (to {path.readlink()}); the toolkit writes and deletes "
                                  "there and never through a link: replace it by a folder, or use another --out")
        return self
