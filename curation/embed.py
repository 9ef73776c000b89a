"""Optional image-embedding look-alikes (a CLIP-style vision model), for what pHash cannot see.

pHash finds re-encodes, resizes and small edits. Two photos of one lesion from another angle, or
a crop, are far apart in pHash but close in an embedding space. Such pairs are never dropped as
copies; they join one lineage group (real images) and count as leakage across splits.
Used only when `curation.embedding_model` names a model (a Hub id with a pinned revision, or a
local folder); heavy imports happen here, never at command start.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from builder.core.backends import Backend
from builder.core.config import CurationConfig
from builder.core.errors import ConfigError
from builder.core.models import check_pinned, pin_model

log = logging.getLogger(__name__)
REVISION = "curation.embedding_revision"


class TransformersEmbedder(Backend):
    """A transformers vision model (CLIP-style or any model with pooled output) as an image embedder."""

    kind, name = "embedding", "transformers"
    settings = ("embedding_model", "embedding_revision")

    @classmethod
    def check(cls, cfg: CurationConfig) -> None:
        if cfg.embedding_model:
            check_pinned(cfg.embedding_model, cfg.embedding_revision, setting=REVISION, flag=None)

    def __init__(self, cfg: CurationConfig, device: str = "cpu"):
        self.device = device
        self.net, self.processor = load_embedder(cfg.embedding_model, cfg.embedding_revision, device)

    def embed(self, paths: Sequence[str | Path]) -> np.ndarray:
        return embed_paths(paths, self.net, self.processor, device=self.device)


def load_embedder(model: str, revision: str | None = None, device: str = "cpu", *, setting: str = REVISION,
                  flag: str | None = None):
    """(model, image processor) in eval mode; the class comes from the config's architecture."""
    import transformers

    pinned = pin_model(model, revision, setting=setting, flag=flag)
    src, rev = pinned.source, pinned.load_revision
    try:
        config = transformers.AutoConfig.from_pretrained(src, revision=rev)
        arch = (config.architectures or ["AutoModel"])[0]
        cls = getattr(transformers, arch, transformers.AutoModel)
        net = cls.from_pretrained(src, revision=rev).to(device).eval()
        processor = transformers.AutoImageProcessor.from_pretrained(src, revision=rev)
    except (OSError, ValueError) as e:
        off = ", or set curation.embedding_model to null" if setting == REVISION else ""
        raise ConfigError(f"model {model!r} (revision {revision!r}, for {setting}) cannot be loaded ({e}); "
                          f"give a local folder or a Hub id available offline{off}") from e
    return net, processor


def embed_paths(paths: Sequence[str | Path], net, processor, *, batch_size: int = 32,
                device: str = "cpu") -> np.ndarray:
    """L2-normalised float32 embeddings, one row per image path, in order."""
    import torch
    from PIL import Image

    out = []
    for s in range(0, len(paths), batch_size):
        images = [np.asarray(Image.open(p).convert("RGB")) for p in paths[s:s + batch_size]]
        inputs = processor(images=images, return_tensors="pt").to(device)
        with torch.inference_mode():
            out.append(image_features(net, inputs).float().cpu().numpy())
    vecs = np.concatenate(out) if out else np.zeros((0, 1), np.float32)
    return vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)


def image_features(net, inputs):
    """Pooled image features: CLIP-style image embeds, else the pooler output, else the mean token."""
    if hasattr(net, "get_image_features"):  # CLIPModel, SiglipModel, ...
        feats = net.get_image_features(**inputs)
        return feats if not hasattr(feats, "pooler_output") else feats.pooler_output
    output = net(**inputs)
    for name in ("image_embeds", "pooler_output"):
        if getattr(output, name, None) is not None:
            return output[name]
    return output.last_hidden_state.mean(dim=1)


def embedding_pairs(vectors: np.ndarray, min_cosine: float) -> list[tuple[int, int, float]]:
    """All index pairs (i < j) with cosine similarity >= min_cosine (exact: faiss flat inner product)."""
    import faiss

    if not 0 < min_cosine <= 1:
        raise ConfigError(f"curation.embedding_min_cosine={min_cosine!r}: expected a cosine in (0, 1]")
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if len(x) < 2:
        return []
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    lims, sims, ids = index.range_search(x, float(min_cosine) - 1e-6)  # faiss keeps sim > radius
    out = []
    for i in range(len(x)):
        for j, sim in zip(ids[lims[i]:lims[i + 1]].tolist(), sims[lims[i]:lims[i + 1]].tolist()):
            if i < j:
                out.append((i, int(j), round(float(sim), 4)))
    return sorted(out)


def look_alikes(items: Sequence[tuple[str, str | Path]], cfg: CurationConfig,
                device: str = "cpu") -> list[tuple[str, str, float]]:
    """(id_a, id_b, cosine), id_a < id_b, for every pair of (id, image path) items that look alike
    in the embedding backend's space (cosine >= `cfg.embedding_min_cosine`)."""
    from builder.core.backends import backend_for

    items = sorted(items, key=lambda t: t[0])
    vecs = backend_for("embedding", cfg)(cfg, device).embed([p for _, p in items])
    pairs = [(items[i][0], items[j][0], c) for i, j, c in embedding_pairs(vecs, cfg.embedding_min_cosine)]
    log.info("embedding look-alikes: %d pairs over %d images (cosine >= %s)", len(pairs), len(items),
             cfg.embedding_min_cosine)
    return pairs
