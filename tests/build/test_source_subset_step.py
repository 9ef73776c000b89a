"""The build reads `source.subset`: its source step keeps Fitzpatrick17k's expert-verified rows, ingest counts the rest."""
from __future__ import annotations

import dataclasses
import types

import pytest

from builder.build.steps import BuildContext, SourceStep
from builder.core.config import load_config
from builder.core.errors import ConfigError
from builder.core.store import StageStore
from curation.source.ingest import ingest_source, plan_ingest
from tests.curation.source.test_auto_masks import fitz_source


def _cfg(subset: str):
    cfg = load_config("1.2")
    return dataclasses.replace(cfg, source=dataclasses.replace(cfg.source, subset=subset))


def test_the_source_step_applies_the_subset_and_ingest_counts_what_it_left_out(tmp_path, shared_data):
    rows = fitz_source(shared_data, tmp_path / "src", 39)
    cfg = _cfg("expert_verified")
    SourceStep().check(cfg, "cpu")
    opts = types.SimpleNamespace(decisions=None, source=tmp_path / "src", masks=None, source_name=None, limit=None)
    ctx = BuildContext(cfg=cfg, opts=opts, layout=None)
    SourceStep().run(ctx)
    verified = {f"fitz17k:{r['md5hash']}" for r in rows if r["fitz17k_qc"] in ("1 Diagnostic", "2 Characteristic")}
    assert {r.source_id for r in ctx.table.rows} == verified and len(verified) == 3
    plan = plan_ingest(ctx.source, None, table=ctx.table)
    summary = ingest_source(ctx.source, None, StageStore(tmp_path / "real"), workers=1, plan=plan)
    assert summary.done == 3 and summary.rejected == {"not_in_subset": 36}
    every = BuildContext(cfg=load_config("1.2"), opts=opts, layout=None)  # the default: all rows
    SourceStep().run(every)
    assert len(every.table.rows) == 39 and not every.table.rejections
    with pytest.raises(ConfigError, match="source.subset='qc' is not one of all, expert_verified"):
        SourceStep().check(_cfg("qc"), "cpu")


def test_v11_and_v12_keep_every_row():
    assert load_config("1.1").source.subset == load_config("1.2").source.subset == "all"
