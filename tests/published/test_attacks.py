"""Adversarial inputs to audit, export and evaluate: nothing outside its folder is deleted or written,
every integrity problem is a reported failure (exit 1), no leak passes as CLEAN.

Destructive attacks run in temporary folders and check that a planted user file survives."""
from __future__ import annotations

import csv
import json
import shutil
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from builder.build.manifest import relist_files
from builder.cli import main
from tests.publish_helpers import build_version, make_store

FORMULA = '=HYPERLINK("http://evil.example","x")'


@pytest.fixture(scope="module")
def built(shared_data, tmp_path_factory):
    """One version (with a label that a spreadsheet would run as a formula), copied per test."""
    root = tmp_path_factory.mktemp("attacks")
    store = make_store(shared_data, root / "store", limit=10)
    records = store.records()
    victim = next(r for r in records if r.split == "train" and r.kind == "healthy")
    victim.disease_raw = FORMULA
    (store.root / "records" / "00000.jsonl").unlink()
    store.finish_shard("00000", records, [])
    return build_version(store, root / "build")


@pytest.fixture()
def version(built, tmp_path):
    shutil.copytree(built.parent, tmp_path / "build", symlinks=True)
    return tmp_path / "build" / built.name


def _export(folder, out, *extra) -> int:
    return main(["export", "patchalign", "--version", folder.name, "--folder", str(folder), "--out", str(out), *extra])


def _audit(folder, report, *extra) -> tuple[int, dict]:
    rc = main(["audit", str(folder), "--report", str(report), *extra])
    return rc, json.loads(report.read_text())


def _problems(report: dict) -> set[str]:
    return {p["problem"] for p in report["integrity"]["problems"]}


def _rewrite_shard(folder, rel, change) -> None:
    """Rewrite one shard with `change(table) -> table` (schema metadata kept) and re-list it in the manifest."""
    path = folder / rel
    table = pq.read_table(path)
    pq.write_table(change(table).replace_schema_metadata(table.schema.metadata), path)
    relist_files(folder, [rel])


def _train_shard(folder) -> str:
    return next(p.relative_to(folder).as_posix() for p in sorted((folder / "data" / "healthy").glob("train-*.parquet")))


# -- export never deletes or writes outside its folder ----------------------------------------------
@pytest.mark.parametrize("where", ["build_root", "version", "real", "above_real"])
def test_export_overwrite_never_deletes_what_it_reads(version, tmp_path, capsys, where):
    real = tmp_path / "ddi"
    (real / "images").mkdir(parents=True)
    (real / "ddi_metadata.csv").write_text("DDI_ID,DDI_file,skin_tone,malignant,disease\n")
    (real / "images" / "000001.png").write_bytes(b"the user's photo")
    out = {"build_root": version.parent, "version": version, "real": real, "above_real": tmp_path}[where]
    rc = _export(version, out, "--overwrite", *(["--real", str(real)] if where != "version" else []))
    assert rc == 2 and "--overwrite" not in capsys.readouterr().err
    assert (real / "images" / "000001.png").read_bytes() == b"the user's photo"
    assert (version / "manifest.json").is_file()


def test_export_overwrite_refuses_a_folder_it_did_not_make(version, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    assert _export(version, out, "--overwrite") == 2
    err = capsys.readouterr().err
    assert "no export made" in err and "--overwrite" not in err
    assert (out / "thesis.tex").read_text() == "years of work"
    # even beside an export's own files
    assert _export(version, tmp_path / "pa") == 0
    (tmp_path / "pa" / "notes.txt").write_text("mine")
    assert _export(version, tmp_path / "pa", "--overwrite") == 2
    assert (tmp_path / "pa" / "notes.txt").read_text() == "mine"


def test_export_resumes_after_an_interruption(version, tmp_path, monkeypatch):
    import builder.published.export as export

    out = tmp_path / "pa"

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "_write_codes", killed)
    assert _export(version, out) == 130
    monkeypatch.undo()
    assert _export(version, out) == 0  # redone without --overwrite
    assert (out / "train.csv").is_file() and json.loads((out / ".cgddi-export.json").read_text())["state"] == "done"


def test_csv_cells_that_spreadsheets_would_run_are_neutralised(version, tmp_path):
    out = tmp_path / "pa"
    assert _export(version, out, "--include-healthy") == 0  # the formula label is on a healthy row
    cells = [c for row in csv.reader(open(out / "train.csv")) for c in row]
    assert "'" + FORMULA in cells and FORMULA not in cells
    assert not any(c[:1] in "=+@" for c in cells if c)
    codes = [c for row in csv.reader(open(out / "low_codes.csv")) for c in row]
    assert "'" + FORMULA in codes


def test_sample_id_with_a_path_fails_audit_and_export_writes_nothing_outside(version, tmp_path, capsys):
    rel = _train_shard(version)
    escape = "../../../../pwned"

    def change(t):
        ids = t.column("sample_id").to_pylist()
        ids[0] = escape
        return t.set_column(t.schema.get_field_index("sample_id"), "sample_id", pa.array(ids, pa.string()))

    _rewrite_shard(version, rel, change)
    rc, report = _audit(version, tmp_path / "r.json")
    assert rc == 1 and "unsafe_sample_id" in _problems(report)
    out = tmp_path / "a" / "b" / "c" / "pa"
    assert _export(version, out) == 2
    assert not list(tmp_path.rglob("pwned*"))


def test_linked_report_file_is_replaced_not_written_through(version, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    work = version.parent / ".work" / version.name
    work.mkdir(parents=True, exist_ok=True)
    (work / "audit_report.json").symlink_to(victim)
    assert main(["audit", str(version)]) == 0
    assert victim.read_text() == "precious"
    assert json.loads((work / "audit_report.json").read_text())["ok"]


def test_linked_work_folder_gets_no_report(version, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (version.parent / ".work").mkdir(exist_ok=True)
    shutil.rmtree(version.parent / ".work" / version.name, ignore_errors=True)
    (version.parent / ".work" / version.name).symlink_to(elsewhere)
    assert main(["audit", str(version)]) == 2
    assert not list(elsewhere.iterdir())


# -- audit sees what load_dataset sees --------------------------------------------------------------
def test_by_name_discovery_without_configs_is_audited(version, tmp_path):
    """No `configs` in the card: `datasets` finds data/train.parquet by its name and serves it as train."""
    import yaml

    test_shard = next((version / "data" / "healthy").glob("test-*.parquet"))
    shutil.copy(test_shard, version / "data" / "train.parquet")
    text = (version / "README.md").read_text()
    _, front, body = text.split("---", 2)
    meta = yaml.safe_load(front)
    meta.pop("configs")
    meta.pop("dataset_info")  # nothing left for a card check to catch: only reading the file does
    (version / "README.md").write_text("---\n" + yaml.safe_dump(meta) + "---" + body)
    relist_files(version, ["README.md", "data/train.parquet"])
    rc, report = _audit(version, tmp_path / "r.json")
    assert rc == 1
    assert {"split_column_mismatch", "duplicate_sample_id"} & _problems(report)


@pytest.mark.parametrize("attack", ["bit_flip", "not_an_image", "class_index", "negative_index"])
def test_damaged_shards_are_reported_failures(version, tmp_path, attack):
    rel = _train_shard(version)
    if attack == "bit_flip":
        data = bytearray((version / rel).read_bytes())
        data[len(data) // 3] ^= 0x10
        (version / rel).write_bytes(bytes(data))
        relist_files(version, [rel])
    elif attack == "not_an_image":
        def change(t):
            img = t.column("image").combine_chunks()
            b = img.field("bytes").to_pylist()
            b[0] = b"<html>not a png</html>"
            arr = pa.StructArray.from_arrays([pa.array(b, pa.binary()), img.field("path")], fields=list(img.type))
            return t.set_column(t.schema.get_field_index("image"), t.schema.field("image"), arr)
        _rewrite_shard(version, rel, change)
    else:
        def change(t):
            d = t.column("disease").to_pylist()
            d[0] = 10_000 if attack == "class_index" else -1
            return t.set_column(t.schema.get_field_index("disease"), t.schema.field("disease"), pa.array(d, pa.int64()))
        _rewrite_shard(version, rel, change)
    rc, report = _audit(version, tmp_path / "r.json")
    assert rc == 1 and not report["ok"]
    if attack != "bit_flip":  # a flipped bit may land in a page (unreadable) or the footer (sha256)
        assert {"bad_image", "class_index_out_of_range"} & _problems(report)


def test_decompression_bomb_is_refused_unread(version, tmp_path):
    import resource

    rel = _train_shard(version)
    table = pq.read_table(version / rel)
    schema = table.schema
    big = pa.table({c: pa.nulls(1, schema.field(c).type) for c in schema.names}, schema=schema.remove_metadata())
    prompt = pa.array(["x" * (400 * 2**20)], pa.string())
    big = big.set_column(schema.get_field_index("prompt"), schema.field("prompt"), prompt)
    pq.write_table(big.replace_schema_metadata(schema.metadata), version / rel, compression="zstd")
    del big, prompt, table
    relist_files(version, [rel])
    assert (version / rel).stat().st_size < 1_000_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rc, report = _audit(version, tmp_path / "r.json")
    assert rc == 1 and "oversized_row_group" in _problems(report)
    assert _export(version, tmp_path / "pa") == 2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 300 * 1024  # KiB: never decompressed


def test_links_to_parent_folders_do_not_hang(version, tmp_path):
    (version / "data" / "loop1").symlink_to("..")
    (version / "data" / "healthy" / "loop2").symlink_to("..")
    done = {}
    t = threading.Thread(target=lambda: done.update(rc=_audit(version, tmp_path / "r.json")), daemon=True)
    t.start()
    t.join(120)
    assert done, "audit did not finish"
    rc, report = done["rc"]
    assert rc == 1 and "linked_folder" in _problems(report)
    assert _export(version, tmp_path / "pa") == 2


@pytest.mark.parametrize("attack", ["yaml", "manifest_path", "manifest_files"])
def test_malformed_card_and_manifest_are_reported(version, tmp_path, attack):
    if attack == "yaml":
        (version / "README.md").write_text("---\nconfigs: [unclosed\n---\nbody\n")
        relist_files(version, ["README.md"])
    else:
        manifest = json.loads((version / "manifest.json").read_text())
        if attack == "manifest_path":
            manifest["files"].append({"path": "../../etc/passwd", "bytes": 1, "sha256": "0" * 64})
        else:
            manifest["files"] = "nothing"
        (version / "manifest.json").write_text(json.dumps(manifest))
    rc, report = _audit(version, tmp_path / "r.json")
    assert rc == 1 and not report["integrity"]["ok"]


# -- evaluate writes into a version only under its lock --------------------------------------------
def test_evaluate_holds_the_version_lock(version, tmp_path, capsys):
    from builder.core.lock import hold
    from builder.published.evaluate.run import EvalSettings, run_evaluation
    from builder.core.errors import LockError

    work = version.parent / ".work" / version.name
    with hold(work, command="build --version 1.1"):
        with pytest.raises(LockError, match="in use"):
            run_evaluation(version, EvalSettings(model=str(tmp_path)), work=work)


def _fake_result(version: str) -> dict:
    cell = {"n_test": 0, "n_malignant": 0, "auroc": None, "auroc_ci": [None, None], "sensitivity": None}
    return {"version": version, "models": {"features": {"id": "a", "revision": "b"},
                                           "classifier": {"id": "a", "revision": "b"}},
            "settings": {"steps": 1, "seed": 0, "specificity": 0.9}, "fidelity": {}, "clip_agreement": None,
            "utility": {"n_test": 0, "n_train": {"real": 0, "real+synthetic": 0},
                        **{k: {**{g: dict(cell) for g in ("light", "medium", "dark", "overall")}, "gap": None}
                           for k in ("real", "real+synthetic")}}}


def test_evaluate_interrupted_while_writing_leaves_the_version_whole(version, tmp_path, monkeypatch):
    import cards.evaluation
    from builder.published.evaluate.run import write_results

    before = {p.relative_to(version): p.read_bytes() for p in version.rglob("*") if p.is_file()}

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cards.evaluation, "write_card_section", killed)
    with pytest.raises(KeyboardInterrupt):
        write_results(version, _fake_result(version.name))
    assert {p.relative_to(version): p.read_bytes() for p in version.rglob("*") if p.is_file()} == before
    monkeypatch.undo()
    assert _audit(version, tmp_path / "r.json")[0] == 0
    write_results(version, _fake_result(version.name))  # the rerun completes it
    rc, report = _audit(version, tmp_path / "r.json")
    assert rc == 0 and (version / "evaluation.json").is_file()
    assert {p.relative_to(version): p.read_bytes() for p in version.rglob("*.parquet")} == \
        {k: v for k, v in before.items() if k.suffix == ".parquet"}


def test_a_version_renamed_aside_by_a_killed_run_is_put_back(version):
    from builder.build.manifest import recover_version

    aside = version.parent / ".staging" / f".old-{version.name}.999999999"
    aside.parent.mkdir(exist_ok=True)
    version.rename(aside)  # killed between "old aside" and "new in"
    recover_version(version)
    assert (version / "manifest.json").is_file() and not aside.exists()


def test_push_never_takes_a_file_from_outside_the_version(version, tmp_path):
    from builder.build.manifest import file_entry
    from builder.published.push import PublishError, load_local_version

    secret = version.parent.parent / "secret.txt"
    secret.write_text("token")
    manifest = json.loads((version / "manifest.json").read_text())
    manifest["files"].append(file_entry(version, "../../secret.txt"))
    (version / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PublishError, match="not a file inside"):
        load_local_version(version, version.name)


def _ddi_folder(root, rows: list[str]):
    """A DDI folder: table rows as given, a readable photo for 000001.png and one outside the folder."""
    import numpy as np

    from builder.core.store import encode_png

    real = root / "a" / "b" / "ddi"
    real.mkdir(parents=True)
    png = encode_png(np.full((32, 32, 3), 90, np.uint8))
    (real / "000001.png").write_bytes(png)
    (root / "a" / "evil.png").write_bytes(png)
    (real / "ddi_metadata.csv").write_text("DDI_ID,DDI_file,skin_tone,malignant,disease\n" + "\n".join(rows) + "\n")
    return real


def test_export_real_rows_with_paths_or_bad_values_are_left_out(version, tmp_path, capsys):
    real = _ddi_folder(tmp_path, ["1,000001.png,12,TRUE,melanoma", "2,../../evil.png,12,TRUE,melanoma",
                                  "3,000001.png,99,TRUE,melanoma", "4,000001.png,34,,", "5,,12,TRUE,melanoma"])
    out = tmp_path / "x" / "y" / "pa"
    assert _export(version, out, "--real", str(real)) == 0, capsys.readouterr().err
    report = json.loads((out / "export_report.json").read_text())
    assert len(report["real_rows_without_image"]) == 4
    assert not (tmp_path / "x" / "evil.png").exists() and not list(tmp_path.glob("x/**/evil.png"))
    real_rows = [r for r in csv.DictReader(open(out / "train.csv")) if r["kind"] == "real"]
    real_rows += [r for r in csv.DictReader(open(out / "test.csv")) if r["kind"] == "real"]
    assert [r["DDI_file"] for r in real_rows] == ["000001.png"]


def test_by_name_discovery_on_a_hub_repo_is_audited(version, tmp_path):
    """The same attack committed to a Hub repo: the audit of the repo reads what load_dataset serves."""
    import hashlib

    import yaml

    from tests.hub_server import HubServer
    from tests.published.test_push import REPO, TOKEN, _cli, _push

    with HubServer(token=TOKEN) as hub:
        assert _push(hub, tmp_path, version, version.name).returncode == 0
        repo = hub.repo(REPO)
        head = repo.resolve("main")
        test_shard = next((version / "data" / "healthy").glob("test-*.parquet")).read_bytes()
        _, front, body = (version / "README.md").read_text().split("---", 2)
        meta = {k: v for k, v in yaml.safe_load(front).items() if k not in ("configs", "dataset_info")}
        card = ("---\n" + yaml.safe_dump(meta) + "---" + body).encode()
        manifest = json.loads((version / "manifest.json").read_text())
        for f in manifest["files"]:
            if f["path"] == "README.md":
                f.update(bytes=len(card), sha256=hashlib.sha256(card).hexdigest())
        manifest["files"].append({"path": "data/train.parquet", "bytes": len(test_shard),
                                  "sha256": hashlib.sha256(test_shard).hexdigest()})
        planted = repo.add_commit(head.oid, "plant", {**head.files, "README.md": card,
                                                      "data/train.parquet": test_shard,
                                                      "manifest.json": json.dumps(manifest).encode()})
        repo.branches["main"] = planted.oid
        report = tmp_path / "audit.json"
        p = _cli(hub, tmp_path, "audit", REPO, "--revision", "main", "--report", str(report))
    assert p.returncode == 1, p.stdout + p.stderr
    assert {"split_column_mismatch", "duplicate_sample_id"} & _problems(json.loads(report.read_text()))


def test_export_may_make_a_new_folder_inside_the_build_root(version, tmp_path):
    assert _export(version, version.parent / "exports" / "pa") == 0
    other = version.parent / "1.0"
    other.mkdir()
    (other / "manifest.json").write_text("{}")
    assert _export(version, other, "--overwrite") == 2  # another version is no export's folder
    assert (other / "manifest.json").read_text() == "{}"
