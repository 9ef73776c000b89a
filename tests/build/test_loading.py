"""A built version loads straight into training: the card's transform snippet feeds a DataLoader."""
from __future__ import annotations

import datasets
import pytest

from cards.usage import TRAIN_SNIPPET

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def ds(ddi_build):
    _, result, _ = ddi_build
    return datasets.load_dataset(str(result.out_dir))


def test_images_come_in_several_sizes(ds):
    # why the snippet exists: a default DataLoader over with_format("torch") cannot stack these
    assert len({im.size for im in ds["train"]["image"]}) > 1


def test_card_snippet_runs_with_a_dataloader(ds, ddi_build):
    _, result, _ = ddi_build
    assert TRAIN_SNIPPET in (result.out_dir / "README.md").read_text()  # the card shows exactly this code
    scope = {"ds": ds}
    exec(compile(TRAIN_SNIPPET, "card-usage-snippet", "exec"), scope)
    batch = scope["batch"]
    n = min(16, scope["lesions"].num_rows)
    assert batch["pixel_values"].shape == (n, 3, 224, 224) and batch["pixel_values"].dtype == torch.float32
    assert batch["malignant"].shape == (n,) and set(batch["malignant"].tolist()) <= {0, 1}
    assert 0 <= float(batch["pixel_values"].min()) and float(batch["pixel_values"].max()) <= 1


def test_has_lesion_filters_healthy_rows(ds):
    kinds = ds["train"].features["kind"]
    for row_kind, has in zip(ds["train"]["kind"], ds["train"]["has_lesion"]):
        assert has == (kinds.int2str(row_kind) != "healthy")


def test_disease_classlabel_allows_stratified_splits(ds):
    f = ds["train"].features["disease"]
    assert isinstance(f, datasets.ClassLabel) and f.names[-1] == "healthy" and len(f.names) == 66
    assert f.int2str(ds["train"][0]["disease"]) in f.names
    data = datasets.concatenate_datasets([ds["train"], ds["validation"], ds["test"]])
    common = {d for d in set(data["disease"]) if data["disease"].count(d) >= 2}
    data = data.filter(lambda d: d in common, input_columns="disease")
    parts = data.train_test_split(test_size=0.3, stratify_by_column="disease", seed=0)
    assert set(parts["test"]["disease"]) <= set(parts["train"]["disease"])
