"""Push over real HTTP to the loopback Hub, then load_dataset(repo_id, revision="v1.1") against it."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from tests.hub_server import HubServer
from tests.publish_helpers import build_version, copy_published, make_store, plant_leak

TOKEN = "hf_loopbackSECRETtoken0123456789"
REPO = "cgddi-lab/cgddi"


@pytest.fixture()
def hub():
    with HubServer(token=TOKEN) as server:
        yield server


@pytest.fixture()
def store(fitz_v11, tmp_path):
    """A writable copy of the session's 20-photo store (`build_version` publishes it after a change)."""
    return copy_published(fitz_v11, tmp_path / "copy")[0]


def _env(hub, tmp_path, token=TOKEN) -> dict:
    env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0", HF_HUB_DISABLE_XET="1",
               HF_HOME=str(tmp_path / "hf_home"), CGDDI_PROGRESS="0")
    env.pop("HF_TOKEN", None)
    if token:
        env["HF_TOKEN"] = token
    return env


def _cli(hub, tmp_path, *argv, token=TOKEN) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "builder", "-v", *argv], env=_env(hub, tmp_path, token),
                          capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))


def _push(hub, tmp_path, folder, version="1.1", *extra, token=TOKEN):
    return _cli(hub, tmp_path, "push", "--version", version, "--repo-id", REPO, "--folder", str(folder),
                *extra, token=token)


def _manifest_paths(folder) -> set[str]:
    return {f["path"] for f in json.loads((folder / "manifest.json").read_text())["files"]} | {"manifest.json"}


def test_push_one_commit_tag_and_load_back(hub, fitz_v11, tmp_path):
    store, folder = fitz_v11  # read only
    p = _push(hub, tmp_path, folder, "1.1", "--private")
    assert p.returncode == 0, p.stderr
    assert hub.repo(REPO).private
    commits = hub.commits_on(REPO)
    assert len(commits) == 2  # the Hub's initial commit, then exactly one for the version
    assert set(commits[0].files) == _manifest_paths(folder) | {".gitattributes"}
    for path in _manifest_paths(folder) - {"README.md", "manifest.json"}:
        assert commits[0].files[path] == (folder / path).read_bytes()
    # the card names the real repo in its usage snippets, and the pushed manifest lists that card
    card = commits[0].files["README.md"].decode()
    assert "ORG/NAME" in (folder / "README.md").read_text() and "ORG/NAME" not in card
    assert f'load_dataset("{REPO}", revision="v1.1")' in card
    assert card == (folder / "README.md").read_text().replace("ORG/NAME", REPO)
    listed = {f["path"]: f for f in json.loads(commits[0].files["manifest.json"])["files"]}
    assert listed["README.md"]["sha256"] == hashlib.sha256(card.encode()).hexdigest()
    assert hub.repo(REPO).tags == {"v1.1": commits[0].oid}
    assert hub.repo(REPO).gated is False  # Fitzpatrick17k's licence needs no gate
    # the token authenticated the writes, and appears nowhere else
    assert f"Bearer {TOKEN}" in hub.auth_headers
    assert TOKEN not in p.stdout + p.stderr
    assert not any(TOKEN.encode() in f.read_bytes() for f in folder.rglob("*") if f.is_file())

    code = ("import datasets, json; ds = datasets.load_dataset(%r, revision='v1.1');"
            "print(json.dumps({k: v.num_rows for k, v in ds.items()}))" % REPO)
    load = subprocess.run([sys.executable, "-c", code], env=_env(hub, tmp_path), capture_output=True, text=True)
    assert load.returncode == 0, load.stderr[-2000:]
    counts = json.loads(load.stdout.strip().splitlines()[-1])
    recs = store.records()
    assert counts == {s: sum(r.split == s for r in recs) for s in ("train", "validation", "test")}


def test_repush_is_a_no_op_and_other_content_is_refused(hub, store, fitz_v11, tmp_path):
    _, folder = fitz_v11  # read only; `store` is a copy, changed below
    assert _push(hub, tmp_path, folder).returncode == 0
    head = hub.repo(REPO).branches["main"]
    again = _push(hub, tmp_path, folder)
    assert again.returncode == 0 and "nothing to push" in again.stderr
    plant_leak(store)
    changed = build_version(store, tmp_path / "out2")
    refused = _push(hub, tmp_path, changed)
    assert refused.returncode == 2
    assert "tag v1.1 already exists" in refused.stderr and "immutable" in refused.stderr
    assert hub.repo(REPO).branches["main"] == head and hub.repo(REPO).tags["v1.1"] == head


def test_next_version_replaces_stale_files(hub, store, fitz_v11, tmp_path):
    assert _push(hub, tmp_path, fitz_v11[1]).returncode == 0  # v1.1 of the same store as `store`
    for r in store.records():  # version 1.2 without the semantic config's files
        if r.kind == "semantic":
            (store.root / "images" / f"{r.sample_id}.png").unlink()
    records = [r for r in store.records() if r.kind != "semantic"]
    (store.root / "records" / "00000.jsonl").unlink()
    store.finish_shard("00000", records, [])
    folder = build_version(store, tmp_path / "b", "1.2")
    p = _push(hub, tmp_path, folder, "1.2")
    assert p.returncode == 0, p.stderr
    repo = hub.repo(REPO)
    assert set(repo.commits[repo.tags["v1.2"]].files) == _manifest_paths(folder) | {".gitattributes"}
    assert any(f.startswith("data/semantic/") for f in repo.commits[repo.tags["v1.1"]].files)


def test_dry_run_changes_nothing_and_needs_no_token(hub, fitz_v11, tmp_path):
    _, folder = fitz_v11  # read only
    p = _push(hub, tmp_path, folder, "1.1", "--dry-run", token=None)
    assert p.returncode == 0, p.stderr
    assert "create dataset repo cgddi-lab/cgddi" in p.stdout and "create tag v1.1" in p.stdout
    assert p.stdout.count("  upload ") == len(_manifest_paths(folder))
    assert hub.repos == {}


def test_missing_token_and_tampered_folder_are_refused(hub, fitz_v11, tmp_path):
    _, folder = copy_published(fitz_v11, tmp_path / "copy")  # its card gets edited below
    p = _push(hub, tmp_path, folder, token=None)
    assert p.returncode == 2 and "HF_TOKEN" in p.stderr
    (folder / "README.md").write_text("edited by hand\n")
    p = _push(hub, tmp_path, folder)
    assert p.returncode == 2 and "does not match manifest.json" in p.stderr
    assert hub.repos == {}


def test_audit_a_pushed_revision(hub, fitz_v11, tmp_path):
    store, folder = fitz_v11  # read only
    assert _push(hub, tmp_path, folder).returncode == 0
    report = tmp_path / "audit.json"
    p = _cli(hub, tmp_path, "audit", REPO, "--revision", "v1.1", "--report", str(report))
    assert p.returncode == 0, p.stdout + p.stderr
    doc = json.loads(report.read_text())
    assert doc["ok"] and doc["target"] == f"{REPO}@v1.1" and doc["rows"] == len(store.records())


def test_audit_of_a_repo_fails_on_a_file_the_manifest_does_not_list(hub, fitz_v11, tmp_path):
    """Every file of the repo counts, not only the manifest's; an extra shard the card's
    globs match is served by load_dataset, so it must fail the audit."""
    _, folder = fitz_v11  # read only
    assert _push(hub, tmp_path, folder).returncode == 0
    repo = hub.repo(REPO)
    head = repo.resolve("main")
    extra = (folder / "data" / "healthy" / "test-00000-of-00001.parquet").read_bytes()
    planted = repo.add_commit(head.oid, "plant", {**head.files, "data/healthy/train-extra.parquet": extra})
    repo.branches["main"] = planted.oid
    report = tmp_path / "audit.json"
    p = _cli(hub, tmp_path, "audit", REPO, "--revision", "main", "--report", str(report))
    assert p.returncode == 1, p.stdout + p.stderr
    problems = {(q["problem"], q["path"]) for q in json.loads(report.read_text())["integrity"]["problems"]}
    assert ("unlisted_file", "data/healthy/train-extra.parquet") in problems


def test_push_interrupted_before_the_tag_resumes_without_a_new_commit(hub, fitz_v11, tmp_path):
    _, folder = fitz_v11  # read only
    assert _push(hub, tmp_path, folder).returncode == 0
    head = hub.repo(REPO).branches["main"]
    hub.repo(REPO).tags.clear()  # as if the run died between the commit and the tag
    p = _push(hub, tmp_path, folder)
    assert p.returncode == 0, p.stderr
    assert hub.repo(REPO).branches["main"] == head and hub.repo(REPO).tags == {"v1.1": head}


def test_a_ddi_derived_version_goes_up_gated(hub, shared_data, tmp_path):
    folder = build_version(make_store(shared_data, tmp_path / "store", source="ddi"), tmp_path / "out")
    dry = _push(hub, tmp_path, folder, "1.1", "--dry-run", token=None)
    assert dry.returncode == 0 and "turn on gated access (auto) before the commit: the terms of ddi" in dry.stdout
    p = _push(hub, tmp_path, folder)  # public: gated before any file is committed
    assert p.returncode == 0, p.stderr
    repo = hub.repo(REPO)
    assert repo.gated == "auto" and not repo.private
    settings = [r for r in hub.requests if "/settings" in r]
    first_commit = next(i for i, r in enumerate(hub.requests) if "/commit/" in r)
    assert settings and hub.requests.index(settings[0]) < first_commit
    assert "extra_gated_prompt" in repo.commits[repo.tags["v1.1"]].files["README.md"].decode()


def test_a_ddi_derived_version_is_refused_when_the_hub_will_not_gate(hub, shared_data, tmp_path):
    folder = build_version(make_store(shared_data, tmp_path / "store", source="ddi"), tmp_path / "out")
    hub.refuse_settings = True
    p = _push(hub, tmp_path, folder)
    assert p.returncode == 2, p.stderr
    err = p.stderr.strip().splitlines()[-1]
    assert "require gated access" in err and "--private" in err and "Settings" in err
    assert len(hub.commits_on(REPO)) == 1  # the Hub's initial commit only: no file went up
    assert hub.repo(REPO).private  # created private, never opened ungated
    private = _push(hub, tmp_path, folder, "1.1", "--private")  # a private repo may go up; warned
    assert private.returncode == 0 and "could not be turned on" in private.stderr
