"""Optional embedding look-alikes: exact cosine search, and a crop joining its original's lineage group."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from builder.core.config import CurationConfig
from builder.core.errors import ConfigError
from builder.core.schema import Record
from builder.core.store import StageStore, encode_png
from curation.curate import split_real
from curation.dedup import hash_image_bytes
from curation.embed import embedding_pairs


def test_embedding_pairs_match_brute_force():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    x[150:] = x[:150] + rng.normal(scale=0.1, size=(150, 16)).astype(np.float32)  # planted look-alikes
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sims = x @ x.T
    want = sorted((i, j) for i, j in zip(*np.nonzero(sims >= 0.98)) if i < j)
    got = [(i, j) for i, j, _ in embedding_pairs(x, 0.98)]
    assert got == want and len(want) >= 100
    with pytest.raises(ConfigError, match="embedding_min_cosine=1.5"):
        embedding_pairs(x, 1.5)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=4, projection_dim=16)
    model = CLIPVisionModelWithProjection(cfg)
    model.config.architectures = ["CLIPVisionModelWithProjection"]
    folder = tmp_path_factory.mktemp("tiny-clip")
    model.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def test_crop_joins_its_original_in_test(tiny_clip, shared_data, tmp_path):
    photos = [Image.open(p).convert("RGB") for p in sorted((shared_data / "fitz17k_lesions" / "images").iterdir())[:6]]
    w, h = photos[0].size
    images = [np.asarray(photos[0].crop((w // 10, h // 10, w - w // 10, h - h // 10)))]
    images += [np.asarray(p) for p in photos]
    store = StageStore(tmp_path / "real")
    real = []
    for i, rgb in enumerate(images):  # ddi:000001 is a crop of ddi:000002: far in pHash, close in embedding
        sid = f"real-{i:02d}"
        store.put_image(sid, encode_png(rgb))
        real.append(Record(sample_id=sid, kind="real", skin_tone="light", malignant=False, disease="x",
                           source_ids=[f"ddi:{i + 1:06d}"], image_path=f"images/{sid}.png"))
    store.finish_shard("0", real, [])
    a, b = (hash_image_bytes(s, store.image_path(s).read_bytes()) for s in ("real-00", "real-01"))
    assert np.bitwise_count(np.uint64(a.phash ^ b.phash)) > 6
    cfg = dataclasses.replace(CurationConfig(), split_method="test_ids")
    plain = split_real(real, store, cfg, workers=1, test_ids=["ddi:000001"])
    assert [s for s, v in plain.split_of.items() if v == "test"] == ["ddi:000001"]
    cfg = dataclasses.replace(cfg, embedding_model=str(tiny_clip), embedding_min_cosine=0.998)
    alike = split_real(real, store, cfg, workers=1, test_ids=["ddi:000001"])
    assert sorted(s for s, v in alike.split_of.items() if v == "test") == ["ddi:000001", "ddi:000002"]
    assert alike.look_alikes == 1 and alike.duplicates == []  # grouped, never dropped as a copy
