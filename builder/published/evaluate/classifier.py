"""The utility classifier of `builder evaluate`: a pinned vision backbone + linear head, fine-tuned for malignancy.

One fixed recipe (AdamW, class-weighted cross-entropy, seeded batch order, images resized by the
backbone's own image processor), so two training sets differ only in their images. A finished run's
test scores are cached under the key of (backbone, settings, train and test image digests).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from builder.core.schema import canonical_json, digest
from builder.core.store import atomic_write


def run_key(ident: dict, settings, train, test) -> str:
    recipe = {k: getattr(settings, k) for k in ("steps", "batch_size", "lr", "head_lr", "seed")}
    return digest(canonical_json([ident, recipe, [(i.data_digest(), i.malignant) for i in train],
                                  [i.data_digest() for i in test]]).encode())


def train_and_score(train, test, settings, ident: dict, cache: Path, device: str, label: str) -> np.ndarray:
    """P(malignant) for each test item after fine-tuning on `train` (cached; resumes by key)."""
    path = cache / f"classifier-{run_key(ident, settings, train, test)}.json"
    if path.is_file():
        return np.asarray(json.loads(path.read_text())["scores"], dtype=np.float64)
    net, head, processor = _load(settings, device, train[0])
    _fit(net, head, processor, train, settings, device, label)
    scores = _predict(net, head, processor, test, device)
    atomic_write(path, json.dumps({"label": label, "n_train": len(train), "scores": scores.tolist()}).encode())
    return scores


def _load(settings, device: str, probe):
    """Backbone, a seeded linear head sized by one probe forward pass, and the image processor."""
    import torch

    from builder.published.evaluate.images import decode_images
    from curation.embed import image_features, load_embedder

    torch.manual_seed(settings.seed)
    flag = "--classifier-revision" if settings.classifier else "--revision"
    net, processor = load_embedder(settings.classifier or settings.model,
                                   settings.classifier_revision if settings.classifier else settings.revision, device,
                                   setting=flag, flag=flag)
    with torch.inference_mode():
        width = image_features(net, processor(images=decode_images([probe]), return_tensors="pt").to(device)).shape[-1]
    head = torch.nn.Linear(int(width), 2).to(device)
    return net.train(), head, processor


def _batches(n: int, settings, rng: np.random.Generator):
    """Seeded batch order: a fresh permutation per epoch, `steps` batches in all."""
    order: list[int] = []
    for _ in range(settings.steps):
        if len(order) < settings.batch_size:
            order.extend(rng.permutation(n).tolist())
        yield order[:settings.batch_size]
        del order[:settings.batch_size]


def _fit(net, head, processor, train, settings, device: str, label: str) -> None:
    import torch

    from builder.core.progress import progress
    from builder.published.evaluate.images import decode_images
    from curation.embed import image_features

    y_all = np.array([i.malignant for i in train])
    counts = np.bincount(y_all, minlength=2).astype(np.float64)
    weight = torch.tensor(len(y_all) / (2 * np.maximum(counts, 1)), dtype=torch.float32, device=device)
    opt = torch.optim.AdamW([{"params": net.parameters(), "lr": settings.lr},
                             {"params": head.parameters(), "lr": settings.head_lr}])
    rng = np.random.default_rng(settings.seed)
    for idx in progress(_batches(len(train), settings, rng), desc=f"train {label}", total=settings.steps,
                        unit="step"):
        batch = [train[i] for i in idx]
        inputs = processor(images=decode_images(batch), return_tensors="pt").to(device)
        logits = head(image_features(net, inputs).float())
        target = torch.tensor([i.malignant for i in batch], device=device)
        loss = torch.nn.functional.cross_entropy(logits, target, weight=weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def _predict(net, head, processor, test, device: str) -> np.ndarray:
    import torch

    from builder.published.evaluate.images import decode_images
    from curation.embed import image_features

    net.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(test), 32):
            inputs = processor(images=decode_images(test[s:s + 32]), return_tensors="pt").to(device)
            out.append(torch.softmax(head(image_features(net, inputs).float()), dim=1)[:, 1].cpu().numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)
