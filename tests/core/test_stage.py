"""The one stage contract (builder.core.stage): pinning, shards by rank, fingerprinted markers, one retry."""
import dataclasses
import json
import os

import pytest

from builder.build import BuildOptions, build
from builder.core.config import load_config
from builder.core.errors import BuildError, ConfigError
from builder.core.schema import Record, Rejection
from builder.core.stage import Shard, StageKey, changed, mine, pin, run_shards, store_fingerprint
from builder.core.store import StageStore


def _rec(i: int) -> Record:
    return Record(f"healthy-{i:016x}", "healthy", "light", False, "healthy", [f"demo:{i:06d}"])


def _work(calls: list):
    def work(shard: Shard, _ctx, tick):
        calls.append(shard.name)
        for _ in shard.items:
            tick()
        return [_rec(i) for i in shard.items if i % 3], [Rejection("t", str(i), "multiple_of_three", "x")
                                                         for i in shard.items if not i % 3]
    return work


def _shards(n: int, size: int) -> list[Shard]:
    return [Shard(f"s-{k:03d}", list(range(k, min(k + size, n))), tuple(map(str, range(k, min(k + size, n)))))
            for k in range(0, n, size)]


def test_ranks_split_shards_and_the_union_is_the_one_process_run(tmp_path):
    key = StageKey("t", {"a": 1}, {"source": "f" * 32})
    one, two = StageStore(tmp_path / "one"), StageStore(tmp_path / "two")
    pin(one, key), pin(two, key)
    shards = _shards(10, 3)
    assert [s.name for s in mine(shards, 1, 2)] == ["s-003", "s-009"]
    calls = []
    whole = run_shards(one, key, shards, _work(calls))
    parts = [run_shards(two, key, shards, _work(calls), rank=r, world_size=2) for r in (1, 0)]
    assert whole.done == sum(p.done for p in parts) == 6 and whole.rejected["multiple_of_three"] == 4
    assert [r.to_json() for r in one.records()] == [r.to_json() for r in two.records()]
    marker = json.loads((one.root / "markers" / "s-000.json").read_text())
    assert marker["fingerprint"] == shards[0].fingerprint(key.fingerprint)


def test_only_shards_with_a_matching_marker_are_reused(tmp_path):
    key = StageKey("t", {"a": 1}, {})
    store = StageStore(tmp_path / "s")
    pin(store, key)
    shards = _shards(9, 3)
    run_shards(store, key, shards, _work([]))
    (store.root / "records" / "s-003.jsonl").unlink()  # killed after the images, before the records
    stale = store.root / "markers" / "s-006.json"
    stale.write_text(json.dumps({"fingerprint": "another input"}))
    calls = []
    again = run_shards(store, key, shards, _work(calls))
    assert calls == ["s-003", "s-006"] and (again.done, again.skipped) == (4, 3)


def test_a_failing_shard_is_retried_once_then_names_the_fix(tmp_path):
    key = StageKey("t", {}, {})
    store = StageStore(tmp_path / "s")
    pin(store, key)
    tries = []

    def flaky(shard, _ctx, _tick):
        tries.append(shard.name)
        if len(tries) == 1:
            raise OSError("disk hiccup")
        return [], []

    run_shards(store, key, _shards(3, 3), flaky)
    assert tries == ["s-000", "s-000"]

    def broken(shard, _ctx, _tick):
        raise OSError("disk full")

    with pytest.raises(BuildError, match="failed 2 times.*disk full.*rerun the same command to resume"):
        run_shards(store, key, _shards(6, 3), broken)
    assert store.shard_done("s-000", _shards(6, 3)[0].fingerprint(key.fingerprint))  # finished shards stay

    def bad_config(shard, _ctx, _tick):
        raise ConfigError("not retried")

    with pytest.raises(ConfigError, match="not retried"):
        run_shards(store, key, _shards(6, 3), bad_config)


def test_pin_refuses_or_resets_naming_what_changed(tmp_path):
    store = StageStore(tmp_path / "s")
    old = StageKey("lesion_map", {"feather": 1.5, "pads": [10, 5, 0]}, {"source": "a"})
    assert pin(store, old) == "new"
    assert pin(store, old) == "reused"
    run_shards(store, old, _shards(3, 3), _work([]))
    new = dataclasses.replace(old, settings={"feather": 1.0, "pads": [10, 5, 0]})
    with pytest.raises(ConfigError, match=r"lesion_map\.feather changed.*use a new --out"):
        pin(store, new)
    assert store.records()  # refused: nothing removed
    assert pin(store, new, on_change="reset") == "rerun because lesion_map.feather changed"
    assert not store.records()
    moved = dataclasses.replace(new, inputs={"source": "b"})
    assert pin(store, moved, on_change="reset") == "rerun because source changed"
    assert changed({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}, "d": 0}) == ["a.c", "d"]


def test_store_fingerprint_is_the_pinned_key_else_the_records(tmp_path):
    store = StageStore(tmp_path / "s")
    store.finish_shard("0", [_rec(1)], [])
    unpinned = store_fingerprint(store)
    assert unpinned == store_fingerprint(StageStore(tmp_path / "s")) and len(unpinned) == 16
    other = StageStore(tmp_path / "o")
    key = StageKey("t", {}, {})
    pin(other, key)
    assert store_fingerprint(other) == key.fingerprint


def test_a_bad_lesion_map_setting_fails_before_any_work(tmp_path):
    """Every stage's `check` runs before ingest: `lesion_map.feather: 20` used to fail after healthy."""
    cfg = load_config("1.1")
    bad = dataclasses.replace(cfg, lesion_map=dataclasses.replace(cfg.lesion_map, feather=20))
    with pytest.raises(ConfigError, match="lesion_map.feather=20"):
        build(bad, BuildOptions(out=tmp_path))
    assert not os.listdir(tmp_path)  # no demo source, no ingest, no healthy image
    for section, change, msg in (("healthy", dict(crop_size=100), "healthy.crop_size=100"),
                                 ("curation", dict(phash_hamming=40), "phash_hamming=40"),
                                 ("semantic", dict(budget=4, sample_resolution=30), "multiple of 8")):
        wrong = dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **change)})
        if section == "semantic":
            wrong = dataclasses.replace(wrong, semantic=dataclasses.replace(wrong.semantic, mixed_precision="no"))
        with pytest.raises(ConfigError, match=msg):
            build(wrong, BuildOptions(out=tmp_path))
    assert not os.listdir(tmp_path)


def test_a_full_disk_is_not_retried_but_passed_on_for_the_one_line_message(tmp_path):
    """Retrying cannot help a full or read-only disk: the OSError reaches the CLI, which names the path."""
    import errno

    from builder.core import stage

    calls = []

    def work(shard, ctx, tick):
        calls.append(shard)
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.png"))

    with pytest.raises(OSError) as e:
        stage._retrying(None, "healthy", stage.Shard("s0", []), work, None, lambda: None, 2)
    assert e.value.errno == errno.ENOSPC and len(calls) == 1


def _sleepy_rank(pause: float, *, rank: int, world_size: int):
    import time

    from builder.core.progress import StageSummary

    summary = StageSummary("sleepy")
    time.sleep(pause)
    summary.done = 1
    return summary.stop()


def test_run_ranks_summary_spans_the_work_of_every_rank():
    """The combined summary's wall time covers the ranks' work (it used to start after them: `in 0.0s`)."""
    from builder.core.stage import run_ranks

    for workers in (1, 2):
        summary = run_ranks(_sleepy_rank, workers, "sleepy", 0.3)
        assert summary.done == workers
        assert summary.seconds >= 0.3, (workers, summary.seconds)
