"""The published `mask` column on the demo v1.1 build: a healthy row's mask is exactly the region its
inpainting replaced, a lesion-mapped row's exactly the placed lesion's footprint (recomputed here from
the row's own parameters and its donor), and the column loads through `datasets` as an Image."""
from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from builder.core.schema import KINDS, MASK_HEALED, MASK_LESION, MASKED_KINDS
from builder.core.store import StageStore


def _rows(out_dir, kind: str) -> list[dict]:
    rows = []
    for path in sorted(out_dir.glob(f"data/{kind}/*.parquet")):
        rows += pq.read_table(path, columns=["sample_id", "image", "mask", "parent_id", "donor_id",
                                             "base_id", "params"]).to_pylist()
    return rows


def _mask(cell: dict) -> np.ndarray:
    with Image.open(io.BytesIO(cell["bytes"])) as m:
        assert m.mode == "L"
        return np.asarray(m)


@pytest.fixture(scope="module")
def real(demo_v11) -> StageStore:
    return StageStore(demo_v11.out_dir.parent / ".work" / demo_v11.out_dir.name / "real")


def test_a_healthy_rows_mask_is_its_healed_region(demo_v11, real):
    import json

    from generation.healthy.region import inpaint_region

    rows = _rows(demo_v11.out_dir, "healthy")
    assert rows
    for row in rows:
        p = json.loads(row["params"])
        region = inpaint_region(real.read_mask(row["parent_id"]), include_marker=p["include_marker"],
                                dilate_px=p["dilate_px"], feather_px=p["feather_px"], rim_px=p.get("rim_px", 0),
                                rgb=real.read_image(row["parent_id"]))
        mask = _mask(row["mask"])
        assert set(np.unique(mask)) <= {0, MASK_HEALED}
        assert np.array_equal(mask == MASK_HEALED, region.mask), row["sample_id"]


def test_a_lesion_mapped_rows_mask_is_the_placed_lesion(demo_v11, real):
    import json

    from generation.lesion_map.placement import DonorCuts, clip_patch

    rows = _rows(demo_v11.out_dir, "lesion_mapped")
    healthy = StageStore(real.root.parent / "healthy")  # bases, published or not (curation may drop one)
    assert rows
    for row in rows:
        p, mask = json.loads(row["params"]), _mask(row["mask"])
        cuts = DonorCuts(real.read_image(row["donor_id"]), real.read_mask(row["donor_id"]), p["angle"],
                         p["dilate"], p["feather"], p["donor_resize"])
        patch, (y, x) = clip_patch(cuts.get(mask.shape, p["lesion_scale"]), tuple(p["offset"]), mask.shape)
        footprint = np.zeros(mask.shape, bool)
        footprint[y:y + patch.lesion.shape[0], x:x + patch.lesion.shape[1]] = patch.lesion
        assert footprint.any() and np.array_equal(mask == MASK_LESION, footprint), row["sample_id"]
        # the rest of the base's healed region is marked healed
        base_healed = healthy.read_segmentation(row["base_id"]) == MASK_HEALED
        assert np.array_equal(mask == MASK_HEALED, base_healed & ~footprint), row["sample_id"]


def test_the_mask_loads_through_datasets_as_an_image(demo_v11, tmp_path):
    import datasets

    ds = datasets.load_dataset(str(demo_v11.out_dir), split="train", cache_dir=str(tmp_path / "cache"))
    assert isinstance(ds.features["mask"], datasets.Image)
    seen = set()
    for row in ds:
        kind = KINDS[row["kind"]]
        if kind in MASKED_KINDS:
            assert row["mask"].mode == "L" and row["mask"].size == row["image"].size
        else:
            assert row["mask"] is None
        seen.add(kind)
    assert set(MASKED_KINDS) <= seen
