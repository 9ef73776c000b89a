"""Push one built version to the Hub: one commit of exactly the manifest's files, then an immutable tag.

Numbered steps (diffusers' "simple over easy"): 1. check the local folder against its manifest
(sha256 and size of every file); 2. read the remote state (tag, head, tree); 3. refuse when the tag
already points at other content; 4. create the repo; 5. one commit that adds the manifest's files
and deletes anything else (so the tagged tree holds exactly this version); 6. tag `v<version>`;
7. re-list the tagged tree and check it against the manifest. The token comes from the standard
Hugging Face environment or login (`HF_TOKEN`, `hf auth login`) and is never printed or stored.

A version whose source terms require gated access (DDI-derived, or a source the toolkit does not
know: `cards.sources`) gets the Hub's gated access turned on before any file is committed, or the
push is refused, naming `--private` and the setting. The card's usage snippets say `ORG/NAME` until
a repo is known: the pushed README.md names the real repo id (and the pushed manifest.json lists
that README's hash, so the tagged tree stays self-consistent).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import tempfile
from pathlib import Path

from builder.core.errors import PublishError  # noqa: F401 (callers import it from here too)
from builder.core.layout import inside, is_relative_file_path

log = logging.getLogger(__name__)

KEEP_REMOTE = (".gitattributes",)  # maintained by the Hub itself, not part of a version


@dataclasses.dataclass
class PushPlan:
    repo_id: str
    tag: str
    folder: Path
    files: list[dict]  # manifest entries + manifest.json itself: path, sha256, bytes
    repo_exists: bool | None = None  # None: remote state unknown (dry run without a Hub)
    tag_commit: str | None = None
    head_commit: str | None = None
    deletions: list[str] = dataclasses.field(default_factory=list)
    unchanged: list[str] = dataclasses.field(default_factory=list)
    gated_by: list[str] = dataclasses.field(default_factory=list)  # sources whose terms require gating

    def describe(self, private: bool) -> list[str]:
        """Human-readable planned operations (what --dry-run prints)."""
        lines = []
        if self.repo_exists is None:
            lines.append(f"remote state of {self.repo_id}: not read (no token, or the Hub is unreachable); "
                         "planning as for a new repo")
        if not self.repo_exists:
            lines.append(f"create dataset repo {self.repo_id} ({'private' if private else 'public'})")
        if self.gated_by:
            lines.append(f"turn on gated access (auto) before the commit: the terms of {', '.join(self.gated_by)} "
                         "require it")
        if self.tag_commit:
            lines.append(f"tag {self.tag} already at {self.tag_commit[:12]} with this exact content: nothing to do")
            return lines
        total = sum(f["bytes"] for f in self.files)
        lines.append(f"commit to main (parent {(self.head_commit or 'new repo')[:12]}): "
                     f"{len(self.files)} files, {total / 1e6:.1f} MB, {len(self.deletions)} deletions")
        for f in self.files:
            state = "unchanged" if f["path"] in self.unchanged else "upload"
            lines.append(f"  {state:9s} {f['path']}  {f['bytes']} B  sha256={f['sha256'][:16]}")
        lines.extend(f"  delete    {p}" for p in self.deletions)
        lines.append(f"create tag {self.tag} on that commit")
        return lines


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def git_blob_oid(path: Path) -> str:
    """The git blob id the Hub reports for small (non-LFS) files."""
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def manifest_files(manifest: dict) -> list[dict]:
    """The manifest's file entries as a sorted list of dicts with `path`, `sha256`, `bytes`."""
    files = manifest.get("files")
    if isinstance(files, dict):
        files = [{"path": p, **v} for p, v in files.items()]
    if not isinstance(files, list) or not files:
        raise PublishError("manifest.json has no `files` entries; rebuild the version with "
                           "`python -m builder build`")
    return sorted(files, key=lambda f: f["path"])


def load_local_version(folder: Path, version: str) -> tuple[dict, list[dict]]:
    """1. Read manifest.json and check every listed file's size and sha256 (tampering fails here)."""
    mpath = folder / "manifest.json"
    if not mpath.is_file():
        raise PublishError(f"{mpath} not found; build the version first (`python -m builder build "
                           f"--version {version}`) or pass the folder that holds it")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
        manifest.get("version")
    except (ValueError, AttributeError):
        raise PublishError(f"{mpath} is not a JSON manifest object; rebuild the version") from None
    if str(manifest.get("version")) != str(version):
        raise PublishError(f"{mpath} is version {manifest.get('version')!r}, not {version!r}; "
                           "pass the matching --version")
    files = manifest_files(manifest)
    for f in files:
        p = folder / str(f.get("path"))
        if not is_relative_file_path(f.get("path")) or not inside(p, folder):  # never upload a file from elsewhere
            raise PublishError(f"manifest.json lists {f.get('path')!r}, which is not a file inside {folder}; "
                               "the version fails its audit: rebuild it")
        if not p.is_file():
            raise PublishError(f"{p} is listed in manifest.json but missing; rebuild the version")
        if p.stat().st_size != f["bytes"] or sha256_file(p) != f["sha256"]:
            raise PublishError(f"{p} does not match manifest.json (size or sha256 differs): the file was "
                               "changed after the build; rebuild with `python -m builder build --overwrite`")
    own = {"path": "manifest.json", "sha256": sha256_file(mpath), "bytes": mpath.stat().st_size}
    return manifest, files + [own]


def _remote_matches(entry, folder: Path, f: dict) -> bool:
    """Does a remote tree entry hold the same bytes as local file `f`?"""
    if entry is None or entry.size != f["bytes"]:
        return False
    if entry.lfs is not None:
        return entry.lfs.sha256 == f["sha256"]
    return entry.blob_id == git_blob_oid(_local(folder, f))


def _local(folder: Path, f: dict) -> Path:
    """Where the bytes pushed for `f` are: the version folder, or the staged card naming the repo."""
    return Path(f["local"]) if f.get("local") else folder / f["path"]


def _remote_tree(api, repo_id: str, revision: str) -> dict:
    from huggingface_hub.hf_api import RepoFile

    tree = api.list_repo_tree(repo_id, repo_type="dataset", revision=revision, recursive=True)
    return {e.path: e for e in tree if isinstance(e, RepoFile)}


def read_remote_state(api, plan: PushPlan) -> None:
    """2-3. Fill in what exists remotely; refuse when the tag exists with other content."""
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        refs = api.list_repo_refs(plan.repo_id, repo_type="dataset")
    except RepositoryNotFoundError:
        plan.repo_exists = False
        return
    plan.repo_exists = True
    plan.head_commit = next((b.target_commit for b in refs.branches if b.name == "main"), None)
    tag = next((t for t in refs.tags if t.name == plan.tag), None)
    if tag is not None:
        remote = _remote_tree(api, plan.repo_id, tag.target_commit)
        differ = [f["path"] for f in plan.files if not _remote_matches(remote.get(f["path"]), plan.folder, f)]
        extra = sorted(set(remote) - {f["path"] for f in plan.files} - set(KEEP_REMOTE))
        if differ or extra:
            raise PublishError(
                f"tag {plan.tag} already exists on {plan.repo_id} at {tag.target_commit[:12]} with other "
                f"content ({len(differ)} files differ, e.g. {(differ + extra)[:3]}); published versions are "
                "immutable: bump the version in a new builder/configs/<version>.yaml instead")
        plan.tag_commit = tag.target_commit
        return
    if plan.head_commit:
        remote = _remote_tree(api, plan.repo_id, plan.head_commit)
        wanted = {f["path"] for f in plan.files}
        plan.deletions = sorted(set(remote) - wanted - set(KEEP_REMOTE))
        plan.unchanged = [f["path"] for f in plan.files
                          if _remote_matches(remote.get(f["path"]), plan.folder, f)]


def make_api(token: str | None):
    from huggingface_hub import HfApi

    return HfApi(token=token)


def resolve_token() -> str:
    """The token from HF_TOKEN or `hf auth login`; never logged."""
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise PublishError("no Hugging Face token found: set HF_TOKEN or run `hf auth login` "
                           "(a token with write access to the target namespace)")
    return token


def push_version(folder: Path, version: str, repo_id: str, private: bool = False,
                 dry_run: bool = False) -> PushPlan:
    """Push `folder` (a built version) as one commit + tag `v<version>`; returns the executed plan."""
    manifest, files = load_local_version(folder, version)
    with tempfile.TemporaryDirectory(prefix="cgddi-push-") as staging:
        files = stage_card(folder, files, repo_id, Path(staging))
        plan = PushPlan(repo_id=repo_id, tag=f"v{version}", folder=folder, files=files,
                        gated_by=gating_sources(folder, manifest))
        if dry_run:
            _dry_run_state(plan)
            return plan
        return _push(plan, version, private)


def _push(plan: PushPlan, version: str, private: bool) -> PushPlan:
    api = make_api(resolve_token())
    read_remote_state(api, plan)
    if plan.tag_commit:
        log.info("%s already holds %s with identical content; nothing to push", plan.repo_id, plan.tag)
        return plan
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    if not plan.repo_exists:  # a repo that needs a gate is created private, and opened only once gated
        api.create_repo(plan.repo_id, repo_type="dataset", private=private or bool(plan.gated_by), exist_ok=True)
    if plan.gated_by:
        ensure_gated(api, plan, private)
        if not plan.repo_exists and not private:
            api.update_repo_settings(plan.repo_id, private=False, repo_type="dataset")
    ops = [CommitOperationAdd(f["path"], str(_local(plan.folder, f))) for f in plan.files]
    ops += [CommitOperationDelete(p) for p in plan.deletions]
    info = api.create_commit(plan.repo_id, ops, repo_type="dataset", parent_commit=plan.head_commit,
                             commit_message=f"cgDDI {plan.tag}",
                             commit_description=f"{len(plan.files)} files from manifest.json")
    api.create_tag(plan.repo_id, tag=plan.tag, revision=info.oid, repo_type="dataset",
                   tag_message=f"cgDDI dataset version {version}")
    _verify_tag(api, plan)
    plan.tag_commit = info.oid
    return plan


def gating_sources(folder: Path, manifest: dict) -> list[str]:
    """The version's sources whose terms require gated access (unknown sources count: their terms are
    not known), by the id prefixes of its rows."""
    from cards.sources import SOURCES

    names = version_source_names(folder, manifest)
    return [n for n in names if n not in SOURCES or SOURCES[n].gated_prompt]


def version_source_names(folder: Path, manifest: dict) -> list[str]:
    """The id prefixes of the version's rows (`ddi`, `fitz17k`, `demo`), read from its shards."""
    import pyarrow.parquet as pq

    names = set()
    for f in manifest_files(manifest):
        if f["path"].endswith(".parquet"):
            column = pq.read_table(folder / f["path"], columns=["source_ids"]).column("source_ids").to_pylist()
            names |= {s.split(":", 1)[0] for ids in column for s in ids or ()}
    return sorted(names)


def ensure_gated(api, plan: PushPlan, private: bool) -> None:
    """Turn on the Hub's gated access (automatic approval after the card's form) before any file goes
    up; refuse the push when the Hub does not take it, unless `private` was asked and the repo is."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        if not api.dataset_info(plan.repo_id).gated:
            api.update_repo_settings(plan.repo_id, gated="auto", repo_type="dataset")
        gated = api.dataset_info(plan.repo_id).gated
        why = "the Hub still reports it off"
    except HfHubHTTPError as e:
        gated, why = False, f"the Hub answered {getattr(e.response, 'status_code', '?')}"
    if gated:
        log.info("%s: gated access is %s (terms of %s)", plan.repo_id, gated, ", ".join(plan.gated_by))
    elif private and api.dataset_info(plan.repo_id).private:
        log.warning("%s is private but gated access could not be turned on (%s); turn it on in the repo's "
                    "Settings before making it public", plan.repo_id, why)
    else:
        raise PublishError(f"{plan.repo_id}: the terms of {', '.join(plan.gated_by)} require gated access, and it "
                           f"could not be turned on ({why}); nothing was pushed: pass --private, or turn on "
                           "'Access requests' in the repo's Settings and push again")


def stage_card(folder: Path, files: list[dict], repo_id: str, staging: Path) -> list[dict]:
    """README.md with `ORG/NAME` replaced by `repo_id`, and manifest.json listing that README's hash,
    written under `staging`; the returned entries point there (`local`). Unchanged when the card
    already names a repo."""
    readme = folder / "README.md"
    if not readme.is_file() or b"ORG/NAME" not in readme.read_bytes():
        return files
    text = readme.read_bytes().replace(b"ORG/NAME", repo_id.encode())
    (staging / "README.md").write_bytes(text)
    manifest = json.loads((folder / "manifest.json").read_text())
    entry = {"bytes": len(text), "sha256": hashlib.sha256(text).hexdigest()}
    listed = manifest["files"]
    for f in (listed if isinstance(listed, list) else [{"path": p, **v} for p, v in listed.items()]):
        if f["path"] == "README.md":
            f.update(entry)
    if isinstance(listed, dict):
        listed["README.md"] = {**listed["README.md"], **entry}
    else:
        manifest["files"] = listed
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, default=list) + "\n")
    staged = {"README.md": staging / "README.md", "manifest.json": staging / "manifest.json"}
    return [{**f, "local": str(staged[f["path"]]), "sha256": sha256_file(staged[f["path"]]),
             "bytes": staged[f["path"]].stat().st_size} if f["path"] in staged else f for f in files]


def _dry_run_state(plan: PushPlan) -> None:
    """Best effort: read remote state when a token and the Hub are available, else plan offline."""
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        return
    try:
        read_remote_state(make_api(token), plan)
    except PublishError:
        raise
    except Exception as e:  # offline or unreachable: the plan is still useful
        log.info("could not read the remote state (%s); planning as for a new repo", type(e).__name__)


def _verify_tag(api, plan: PushPlan) -> None:
    """7. The tagged tree must hold exactly the manifest's files, byte for byte."""
    remote = _remote_tree(api, plan.repo_id, plan.tag)
    bad = [f["path"] for f in plan.files if not _remote_matches(remote.get(f["path"]), plan.folder, f)]
    extra = sorted(set(remote) - {f["path"] for f in plan.files} - set(KEEP_REMOTE))
    if bad or extra:
        raise PublishError(f"after pushing, tag {plan.tag} on {plan.repo_id} does not match the manifest "
                           f"(differs: {bad[:3]}, unexpected: {extra[:3]}); inspect the repo before retrying")
