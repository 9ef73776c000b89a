"""Automatic masks vs the hand masks of the 39 real Fitzpatrick17k photos: lesion and skin Dice, images/s per core.

Side by side in one run: a plain Otsu threshold on grayscale (darker side = lesion), "all skin"
(for skin Dice), the CPU backend, and the learned backend by k-fold cross-validation over the
photos (head fit on the other folds' hand masks). Without --model the learned backend's vision
model is a tiny RANDOM-weight DINOv2 built from a config (no downloads here): its figure then
measures the head on colour features plus random features, not a pretrained model.
Skin Dice compares (skin | lesion | marker) with the photo minus its hand-drawn non-skin mask.
The CPU backend's parameters were chosen on these same photos: its figure is not held-out. The vetting
(curation/source/automasks/vet.py) was tuned on the first 20 photos in md5 order; the table splits its
figures into those and the 19 it did not see.
Single process, one thread: images/s is per core. Last line: JSON of the headline figures.

  python benchmarks/masks.py [--folds 5] [--model ID --revision REV] [--limit N]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from builder.core.schema import LABEL_LESION  # noqa: E402
from builder.core.store import decode_rgb  # noqa: E402
from curation.source.masks import read_binary_masks  # noqa: E402

DATA = Path(os.environ.get("CGDDI_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data") \
    / "fitz17k_lesions"


def load(limit: int | None):
    import csv

    rows = list(csv.DictReader(open(DATA / "metadata.csv")))[:limit]
    for r in rows:
        rgb = decode_rgb((DATA / r["image_file"]).read_bytes())
        h, w = rgb.shape[:2]
        lm = read_binary_masks(DATA / r["mask_lesions"], DATA / r["mask_nonskin"], h, w)
        yield r["md5hash"], rgb, lm == LABEL_LESION, lm > 0


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * (a & b).sum() / s)


def otsu(rgb: np.ndarray) -> np.ndarray:
    import cv2

    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    t, _ = cv2.threshold(g, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return g < t


def score(method, photos):
    """(lesion Dice list, skin Dice list, confidences, seconds) of `method(rgb) -> (label map, conf)`."""
    les, skin, conf, secs = [], [], [], 0.0
    for _, rgb, gt_les, gt_skin in photos:
        t = time.perf_counter()
        lm, c = method(rgb)
        secs += time.perf_counter() - t
        les.append(dice(lm == LABEL_LESION, gt_les))
        skin.append(dice(lm > 0, gt_skin))
        conf.append(c)
    return les, skin, conf, secs


def learned_cv(photos, folds: int, model: str, revision: str | None):
    from builder.core.config import MasksConfig
    from curation.source.automasks.learned import LearnedBackend

    backend = LearnedBackend(MasksConfig(backend="learned", model_id=model, revision=revision))
    order = np.random.default_rng(0).permutation(len(photos))
    les, skin, conf, secs = [0.0] * len(photos), [0.0] * len(photos), [0.0] * len(photos), 0.0
    for k in range(folds):
        test = set(order[k::folds].tolist())
        backend.fit((p[1], np.where(p[2], 1, np.where(p[3], 4, 0)).astype(np.uint8))
                    for i, p in enumerate(photos) if i not in test)
        part = [photos[i] for i in sorted(test)]
        lk, sk, ck, s = score(lambda rgb: _result(backend.segment(rgb)), part)
        secs += s
        for i, a, b, c in zip(sorted(test), lk, sk, ck):
            les[i], skin[i], conf[i] = a, b, c
    return les, skin, conf, secs


def _result(r):
    return r.label_map, r.confidence


def _vetted(rgb, r):
    from curation.source.automasks.vet import vet

    v = vet(rgb, r.label_map, r.confidence)
    return v.label_map, v.confidence


TUNE = 20  # the vetting thresholds were chosen on the first 20 photos in md5 order; the other 19 held them out


def vet_report(photos, raw, vetted, min_conf: float) -> None:
    """Per split (tuning photos, held-out photos): accepted masks and their median lesion Dice, before and
    after vetting, and which photos vetting refused."""
    names = [p[0] for p in photos]
    for label, part in (("tuning (first 20 by md5)", slice(0, TUNE)), ("held out (other 19)", slice(TUNE, None))):
        for tag, (les, _, conf, _) in (("before vetting", raw), ("after vetting", vetted)):
            d, c = np.asarray(les[part]), np.asarray(conf[part])
            kept = c >= min_conf
            print(f"{label:<26}{tag:<16} accepted {kept.sum():>2} of {len(d)}, median Dice accepted "
                  f"{np.median(d[kept]) if kept.any() else float('nan'):.3f}, all {np.median(d):.3f}")
    refused = [n[:8] for n, a, b in zip(names, raw[2], vetted[2]) if a >= min_conf > b]
    print(f"refused by vetting (accepted before): {', '.join(refused) or 'none'}")


def tiny_model(folder: Path) -> str:
    import torch
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                             patch_size=14, image_size=56)).save_pretrained(folder)
    return str(folder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--model", default=None, help="learned backend's vision model (default: tiny random DINOv2)")
    ap.add_argument("--revision", default=None)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--min-confidence", type=float, default=0.4)
    args = ap.parse_args()
    import cv2
    from scipy.stats import spearmanr

    from curation.source.automasks.cpu import segment

    cv2.setNumThreads(1)
    photos = list(load(args.limit))
    rows = {"otsu (grayscale)": score(lambda rgb: (np.where(otsu(rgb), 1, 4), 1.0), photos),
            "all skin (skin baseline)": score(lambda rgb: (np.full(rgb.shape[:2], 4, np.uint8), 1.0), photos),
            "cpu-grabcut 1 (tuned on these)": score(lambda rgb: _result(segment(rgb)), photos),
            "cpu-grabcut 1+vet1 (as generate masks)": score(lambda rgb: _vetted(rgb, segment(rgb)), photos)}
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or tiny_model(Path(tmp) / "dinov2-tiny-random")
        name = "learned-probe 1, %d-fold CV%s" % (args.folds, "" if args.model else " (RANDOM tiny model)")
        rows[name] = learned_cv(photos, args.folds, model, args.revision)
    print(f"{len(photos)} real Fitzpatrick17k photos, hand masks; one process, one thread\n")
    print(f"{'method':<44}{'lesion Dice med':>16}{'mean':>7}{'skin Dice med':>15}{'img/s':>10}")
    for name, (les, skin, _, secs) in rows.items():
        print(f"{name:<44}{np.median(les):>16.3f}{np.mean(les):>7.3f}{np.median(skin):>15.3f}"
              f"{len(photos) / secs:>10.2f}")
    les, _, conf, _ = rows["cpu-grabcut 1 (tuned on these)"]
    les, conf = np.asarray(les), np.asarray(conf)
    kept = conf >= args.min_confidence
    print(f"\ncpu-grabcut confidence vs lesion Dice: Spearman {spearmanr(conf, les)[0]:.2f}; at min_confidence "
          f"{args.min_confidence}: {kept.sum()} of {len(les)} kept, median Dice kept "
          f"{np.median(les[kept]) if kept.any() else float('nan'):.3f}, rejected "
          f"{np.median(les[~kept]) if (~kept).any() else float('nan'):.3f}")
    vet_report(photos, rows["cpu-grabcut 1 (tuned on these)"], rows["cpu-grabcut 1+vet1 (as generate masks)"],
               args.min_confidence)
    cpu, learned = rows["cpu-grabcut 1 (tuned on these)"], rows[name]
    print(json.dumps({"lesion_dice_median": round(float(np.median(cpu[0])), 4),
                      "skin_dice_median": round(float(np.median(cpu[1])), 4),
                      "otsu_lesion_dice_median": round(float(np.median(rows["otsu (grayscale)"][0])), 4),
                      "all_skin_dice_median": round(float(np.median(rows["all skin (skin baseline)"][1])), 4),
                      "learned_cv_lesion_dice_median": round(float(np.median(learned[0])), 4),
                      "learned_cv_random_model": args.model is None,
                      "kept_at_min_confidence": int(kept.sum()),
                      "lesion_dice_median_kept": round(float(np.median(les[kept])), 4) if kept.any() else None,
                      "images_per_s": round(len(photos) / cpu[3], 2)}))


if __name__ == "__main__":
    main()
