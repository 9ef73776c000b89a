"""Healthy-fill fidelity on the 39 real Fitzpatrick17k photos: hide known skin, fill it, compare to the truth.

Run: python benchmarks/fill_quality.py [--side 512] [--out out/benchmarks]

Per photo, the photo's own lesion shape (its hand mask, dilated 3 px as the healthy stage does)
is moved onto healthy skin of the same photo (at least 4 px from any non-skin; halved when it fits
nowhere), those true skin pixels are hidden (zeroed) and each CPU fill paints them back:
  telea        - cv2.inpaint Telea, no grain
  telea+grain  - v1.1's fill (Telea + seeded grain of the ring's detail spread)
  exemplar     - v1.2's fill (membrane colour + real skin texture from the nearest region of that shape)
Metrics inside the hidden region against the true pixels: PSNR (dB), SSIM (mean over the region),
texture ratio = high-frequency energy (LoG variance) of the fill / of the truth (1 = same texture).
Medians over photos. Writes a contact sheet (`fill_quality.png`: truth | telea+grain | exemplar).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from builder.core.config import HealthyConfig  # noqa: E402
from builder.core.schema import LABEL_LESION, LABEL_SKIN  # noqa: E402
from generation.healthy.backends import Job, OpenCVBackend  # noqa: E402
from generation.healthy.region import Region, feather_alpha  # noqa: E402
from generation.fit import bbox as _bbox, valid_offsets  # noqa: E402
from generation.lesion_map.placement import choose_offset, with_margin  # noqa: E402
from generation.lesion_map.quality import fill_fidelity  # noqa: E402

METHODS = {"telea": HealthyConfig(opencv_grain=0.0), "telea+grain": HealthyConfig(),
           "exemplar": HealthyConfig(opencv_method="exemplar")}


def load(data: Path, side: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    from PIL import Image

    from curation.source.masks import read_binary_masks

    src = data / "fitz17k_lesions"
    out = []
    for r in sorted(csv.DictReader((src / "metadata.csv").open()), key=lambda r: r["md5hash"]):
        with Image.open(src / r["image_file"]) as im:
            im = im.convert("RGB")
            im.thumbnail((side, side))
            rgb = np.asarray(im)
        out.append((r["md5hash"], rgb, read_binary_masks(src / r["mask_lesions"], src / r["mask_nonskin"], *rgb.shape[:2])))
    return out


def hide(label_map: np.ndarray, seed: int) -> np.ndarray | None:
    """A lesion-shaped region of healthy skin (bool), or None when the shape fits nowhere even halved."""
    import cv2

    les = (label_map == LABEL_LESION).astype(np.uint8)
    if not les.any():
        return None
    les = cv2.dilate(les, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
    y0, x0, h, w = _bbox(les)
    shape = les[y0:y0 + h, x0:x0 + w]
    inside = with_margin((label_map == LABEL_SKIN).astype(np.uint8), 4)
    rng = np.random.default_rng(seed)
    for _ in range(4):
        off = choose_offset(valid_offsets(inside, shape.astype(bool)), rng)
        if off is not None:
            mask = np.zeros(label_map.shape, bool)
            mask[off[0]:off[0] + shape.shape[0], off[1]:off[1] + shape.shape[1]] = shape > 0
            return mask
        shape = cv2.resize(shape, (max(1, shape.shape[1] // 2), max(1, shape.shape[0] // 2)),
                           interpolation=cv2.INTER_NEAREST)
    return None


def fill(method: str, rgb: np.ndarray, label_map: np.ndarray, mask: np.ndarray, seed: int) -> np.ndarray:
    backend = OpenCVBackend(METHODS[method])
    ys, xs = np.nonzero(mask)
    region = Region(mask=mask, alpha=feather_alpha(mask, 0), box=(int(xs.min()), int(ys.min()),
                                                                  int(xs.max()) + 1, int(ys.max()) + 1))
    hidden = rgb.copy()
    hidden[mask] = 0  # the truth is never readable by a fill
    job = Job(hidden, region, None, seed, skin=(label_map == LABEL_SKIN) & ~mask)
    x0, y0, x1, y1 = backend.window(job)
    out = hidden.copy()
    out[y0:y1, x0:x1] = backend.generate([job])[0]
    out[~mask] = rgb[~mask]
    return out


def contact_sheet(cases: list, path: Path, n: int = 8) -> None:
    from PIL import Image, ImageDraw

    cell = 200
    picks = cases[::max(1, len(cases) // n)][:n]
    sheet = Image.new("RGB", (3 * cell, len(picks) * (cell + 16) + 16), "white")
    draw = ImageDraw.Draw(sheet)
    for k, t in enumerate(("truth (hidden skin)", "telea+grain (v1.1)", "exemplar (v1.2)")):
        draw.text((k * cell + 4, 2), t, fill="black")
    for i, (name, truth, mask, fills, scores) in enumerate(picks):
        ys, xs = np.nonzero(mask)
        m = max(12, int(np.ptp(ys) + np.ptp(xs)) // 4)
        box = (max(0, xs.min() - m), max(0, ys.min() - m), xs.max() + m, ys.max() + m)
        y = 16 + i * (cell + 16)
        for k, img in enumerate((truth, fills["telea+grain"], fills["exemplar"])):
            tile = Image.fromarray(img).crop(box)
            tile.thumbnail((cell - 4, cell - 4))
            sheet.paste(tile, (k * cell + 2, y))
        draw.text((2, y + cell - 2), f"{name[:8]}  PSNR telea+grain {scores['telea+grain']['psnr']:.1f} / "
                  f"exemplar {scores['exemplar']['psnr']:.1f} dB", fill="black")
    sheet.save(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path(os.environ.get("CGDDI_SHARED_DATA", ROOT.parent / "shared" / "data")))
    p.add_argument("--side", type=int, default=512, help="photos are fitted into side x side first")
    p.add_argument("--out", type=Path, default=ROOT / "out" / "benchmarks")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cases, skipped = [], 0
    for k, (name, rgb, lm) in enumerate(load(args.data, args.side)):
        mask = hide(lm, k)
        if mask is None:
            skipped += 1
            continue
        fills = {m: fill(m, rgb, lm, mask, k) for m in METHODS}
        cases.append((name, rgb, mask, fills, {m: fill_fidelity(f, rgb, mask) for m, f in fills.items()}))
    sheet = args.out / "fill_quality.png"
    contact_sheet(cases, sheet)
    med = {m: {k: statistics.median(c[4][m][k] for c in cases) for k in ("psnr", "ssim", "texture_ratio")}
           for m in METHODS}
    wins = {k: sum(c[4]["exemplar"][k] > c[4]["telea+grain"][k] for c in cases) for k in ("psnr", "ssim")}
    print(f"healthy fill of hidden real skin: {len(cases)} Fitzpatrick17k photos (fitted to {args.side} px), "
          f"{skipped} skipped (no healthy skin for the shape); medians over photos")
    print(f"{'method':<13} {'PSNR dB':>8} {'SSIM':>7} {'texture ratio':>14}")
    for m, v in med.items():
        print(f"{m:<13} {v['psnr']:>8.2f} {v['ssim']:>7.3f} {v['texture_ratio']:>14.2f}")
    print(f"exemplar beats telea+grain on {wins['psnr']}/{len(cases)} photos in PSNR, {wins['ssim']}/{len(cases)} in SSIM")
    print(f"contact sheet: {sheet}")
    print(json.dumps({"photos": len(cases), "skipped": skipped,
                      **{f"{k}_{m.replace('+', '_')}": round(v[k], 4) for m, v in med.items() for k in v},
                      "exemplar_psnr_wins": wins["psnr"], "exemplar_ssim_wins": wins["ssim"]}))


if __name__ == "__main__":
    main()
