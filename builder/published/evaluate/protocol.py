"""The paper's classifier protocol (as PatchAlign24 trains): an option for GPU machines.

For each holdout seed (36-40), the real photos are split with scikit-learn's
`train_test_split(photos, test_size=0.2, random_state=seed)`; a ViT-B/16 (ImageNet-21k) backbone with a
linear head is trained with Adam at 1e-4, the rate multiplied by 0.8 every 2 epochs, batch 32, 20 epochs,
then fine-tuned at 1e-5 (`finetune_epochs`; the paper does not state how many), on each training set:
the fold's real train photos, this version's synthetic rows that derive from no test photo of the fold
(the strict leakage rule), and both. Reported on the fold's real test photos: accuracy and AUROC per tone
and overall, and PQD, DPM and EOM (builder.published.evaluate.fairness), then mean, SD and a 95% t interval
across the folds. No image augmentation (PatchAlign24's training transforms are not reproduced). Each
fold's run is cached by (backbone, recipe, seed, train and test image digests), so a run resumes.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from builder.core.errors import ConfigError
from builder.core.schema import SKIN_TONES, canonical_json, digest
from builder.core.store import atomic_write
from builder.published.evaluate import fairness, stats as st

TRAINING_SETS = ("real", "synthetic", "real+synthetic")
METRICS = ("accuracy", "auroc_light", "auroc_medium", "auroc_dark", "auroc", "pqd", "dpm", "eom")


@dataclasses.dataclass(frozen=True)
class ProtocolSettings:
    backbone: str = "google/vit-base-patch16-224-in21k"
    revision: str | None = None
    seeds: tuple[int, ...] = (36, 37, 38, 39, 40)
    test_size: float = 0.2
    epochs: int = 20
    lr: float = 1e-4
    step_epochs: int = 2
    gamma: float = 0.8
    batch_size: int = 32
    finetune_epochs: int = 5
    finetune_lr: float = 1e-5
    sets: tuple[str, ...] = TRAINING_SETS

    def check(self) -> None:
        if not Path(self.backbone).is_dir() and not self.revision:
            raise ConfigError(f"--protocol-backbone {self.backbone!r} has no pinned revision: pass "
                              "--protocol-revision <commit> or a local folder")
        bad = [s for s in self.sets if s not in TRAINING_SETS]
        if bad:
            raise ConfigError(f"protocol training sets {bad}: expected some of {list(TRAINING_SETS)}")
        if self.epochs < 1 or self.finetune_epochs < 0 or self.batch_size < 1:
            raise ConfigError(f"protocol epochs {self.epochs} / fine-tuning epochs {self.finetune_epochs} / "
                              f"batch {self.batch_size}: expected >= 1 / >= 0 / >= 1")


def fold(real, synth, seed: int, test_size: float):
    """(real train, real test, synthetic rows from no test photo) for one holdout seed."""
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(list(real), test_size=test_size, random_state=seed)
    held = {s for i in test for s in i.source_ids}
    return train, test, [i for i in synth if not held.intersection(i.source_ids)]


def run_protocol(real, synth, s: ProtocolSettings, cache: Path, device: str) -> dict:
    """Every fold x training set, then the summary across folds."""
    from builder.core.models import local_revision
    from builder.core.schema import public_model_id

    s.check()
    ident = {"id": public_model_id(s.backbone),
             "revision": s.revision or (local_revision(s.backbone) if Path(s.backbone).is_dir() else None)}
    folds: dict[str, dict] = {}
    for seed in s.seeds:
        train, test, synthetic = fold(real, synth, seed, s.test_size)
        sets = {"real": train, "synthetic": synthetic, "real+synthetic": train + synthetic}
        folds[str(seed)] = {"n_test": len(test)}
        for name in s.sets:
            if len({i.malignant for i in sets[name]}) < 2:
                folds[str(seed)][name] = None  # one class only: no classifier can be trained
                continue
            pred, score = _run(sets[name], test, s, ident, seed, cache, device, f"{name} seed {seed}")
            folds[str(seed)][name] = {"n_train": len(sets[name]), **scores(test, pred, score)}
    summary = {name: {m: fairness.across_folds([folds[k][name][m] for k in folds if folds[k][name]])
                      for m in METRICS} for name in s.sets}
    return {"backbone": ident, "settings": {k: v for k, v in dataclasses.asdict(s).items()
                                            if k not in ("backbone", "revision")},
            "folds": folds, "summary": summary}


def scores(test, pred: np.ndarray, score: np.ndarray) -> dict:
    """Accuracy, AUROC per tone and overall, PQD, DPM, EOM of one fold."""
    y = np.array([i.malignant for i in test])
    tone = np.array([i.tone for i in test])
    out = {"accuracy": float((pred == y).mean()), "auroc": _none(st.auroc(y, score)),
           "pqd": _none(fairness.pqd(y, pred, tone)), "dpm": _none(fairness.dpm(pred, tone)),
           "eom": _none(fairness.eom(y, pred, tone))}
    for t in SKIN_TONES:
        out[f"auroc_{t}"] = _none(st.auroc(y[tone == t], score[tone == t])) if (tone == t).any() else None
    return out


def _none(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def _run(train, test, s: ProtocolSettings, ident: dict, seed: int, cache: Path, device: str, label: str):
    recipe = {k: v for k, v in dataclasses.asdict(s).items() if k not in ("backbone", "revision", "seeds", "sets")}
    key = digest(canonical_json([ident, recipe, seed, [(i.data_digest(), i.malignant) for i in train],
                                 [i.data_digest() for i in test]]).encode())
    path = cache / f"protocol-{key}.json"
    if path.is_file():
        got = json.loads(path.read_text())
        return np.asarray(got["pred"]), np.asarray(got["score"], dtype=np.float64)
    net, head, processor = _load(s, device, train[0], seed)
    _train(net, head, processor, train, s, device, seed, label)
    pred, score = _predict(net, head, processor, test, device)
    atomic_write(path, json.dumps({"label": label, "pred": pred.tolist(), "score": score.tolist()}).encode())
    return pred, score


def _load(s: ProtocolSettings, device: str, probe, seed: int):
    import torch

    from builder.published.evaluate.images import decode_images
    from curation.embed import image_features, load_embedder

    torch.manual_seed(seed)
    net, processor = load_embedder(s.backbone, s.revision, device)
    with torch.inference_mode():
        width = image_features(net, processor(images=decode_images([probe]), return_tensors="pt").to(device)).shape[-1]
    return net.train(), torch.nn.Linear(int(width), 2).to(device), processor


def _train(net, head, processor, train, s: ProtocolSettings, device: str, seed: int, label: str) -> None:
    import torch

    from builder.core.progress import progress
    from builder.published.evaluate.images import decode_images
    from curation.embed import image_features

    opt = torch.optim.Adam(list(net.parameters()) + list(head.parameters()), lr=s.lr)
    decay = torch.optim.lr_scheduler.StepLR(opt, step_size=s.step_epochs, gamma=s.gamma)
    rng = np.random.default_rng(seed)
    for epoch in progress(range(s.epochs + s.finetune_epochs), desc=f"protocol {label}", unit="epoch"):
        if epoch == s.epochs:  # the fine-tuning stage: a fixed, lower rate
            for group in opt.param_groups:
                group["lr"] = s.finetune_lr
        order = rng.permutation(len(train))
        for b in range(0, len(order), s.batch_size):
            batch = [train[i] for i in order[b:b + s.batch_size]]
            inputs = processor(images=decode_images(batch), return_tensors="pt").to(device)
            loss = torch.nn.functional.cross_entropy(head(image_features(net, inputs).float()),
                                                     torch.tensor([i.malignant for i in batch], device=device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if epoch < s.epochs:
            decay.step()


def _predict(net, head, processor, test, device: str):
    import torch

    from builder.published.evaluate.images import decode_images
    from curation.embed import image_features

    net.eval()
    prob = []
    with torch.inference_mode():
        for b in range(0, len(test), 32):
            inputs = processor(images=decode_images(test[b:b + 32]), return_tensors="pt").to(device)
            prob.append(torch.softmax(head(image_features(net, inputs).float()), dim=1).cpu().numpy())
    p = np.concatenate(prob) if prob else np.zeros((0, 2))
    return p.argmax(1), p[:, 1].astype(np.float64)
