"""Where a release's files come from: a local folder, or a Hub dataset at a pinned revision.

Only names are listed (the index never reads an image); pixels are fetched only when a version is
written from the release (`local_root`). A Hub source is resolved to its commit once, so the
listing and any download read the same files, and the commit is what the outputs record.
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path, PurePosixPath

from builder.core.errors import ReleaseError

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclasses.dataclass(frozen=True)
class ReleaseSource:
    """A local folder (`folder`) or a Hub dataset (`repo_id` at `commit`, asked for as `revision`)."""

    folder: Path | None = None
    repo_id: str | None = None
    revision: str | None = None
    commit: str | None = None

    def describe(self) -> dict:
        if self.folder is not None:
            return {"kind": "folder", "name": self.folder.name}
        return {"kind": "hub", "repo_id": self.repo_id, "revision": self.revision, "commit": self.commit}


def resolve(source: str, revision: str | None = None) -> ReleaseSource:
    """A local folder as is; `owner/name` is a Hub dataset and needs `revision` (a tag, branch or commit)."""
    path = Path(source)
    if path.is_dir():
        if revision is not None:
            raise ReleaseError(f"--revision {revision} names a Hub revision, but {source} is a local folder; "
                               "drop --revision or pass the Hub dataset id")
        return ReleaseSource(folder=path.resolve())
    if not HUB_ID.match(source):
        raise ReleaseError(f"release source {source!r} is neither a folder nor a Hub dataset id (owner/name)")
    if not revision:
        raise ReleaseError(f"Hub release {source} needs --revision (a tag, branch or commit) so the import "
                           "can be repeated on the same files")
    from huggingface_hub import HfApi

    info = HfApi().dataset_info(source, revision=revision)
    return ReleaseSource(repo_id=source, revision=revision, commit=info.sha)


def list_files(src: ReleaseSource) -> list[str]:
    """Every file's path relative to the release root (`/`-separated), sorted; names only."""
    if src.folder is not None:
        names = []
        for root, dirs, files in os.walk(src.folder):
            dirs.sort()
            rel = Path(root).relative_to(src.folder).as_posix()
            names.extend(f if rel == "." else f"{rel}/{f}" for f in files)
        return sorted(names)
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    tree = HfApi().list_repo_tree(src.repo_id, repo_type="dataset", revision=src.commit, recursive=True)
    return sorted(e.path for e in tree if isinstance(e, RepoFile))


def local_root(src: ReleaseSource, files: list[str], threads: int = 8) -> Path:
    """A local folder holding `files`: the release folder itself, or the Hub cache's snapshot of the
    commit, into which exactly these files are downloaded (not the rest of the release)."""
    if src.folder is not None:
        return src.folder
    from concurrent.futures import ThreadPoolExecutor

    from huggingface_hub import hf_hub_download

    from builder.core.progress import progress

    def fetch(name: str) -> str:
        return hf_hub_download(src.repo_id, name, repo_type="dataset", revision=src.commit)

    if not files:
        raise ReleaseError(f"{src.repo_id}@{src.revision}: no lesion map to download; nothing to publish")
    with ThreadPoolExecutor(threads) as pool:
        paths = list(progress(pool.map(fetch, files), desc="download release", total=len(files)))
    root = Path(paths[0])
    for _ in PurePosixPath(files[0]).parts:
        root = root.parent
    return root
