"""Healthy-fill fidelity and artefacts on the 39 real Fitzpatrick17k photos: hide known skin, fill it,
compare to the truth, and run the artefact detectors on the fill.

Run: python benchmarks/fill_quality.py [--side 512] [--out out/benchmarks]
     python benchmarks/fill_quality.py --heal   (the photos' own lesions healed at full size: detector flags;
                                                 `quilt+rim` = v1.2: the region grown over the perilesional rim)

Per photo, the photo's own lesion shape (its hand mask, dilated 3 px as the healthy stage does)
is moved onto healthy skin of the same photo (halved when it fits nowhere), those true skin pixels
are hidden (zeroed) and each CPU fill paints them back. Four kinds of hole:
  clean  - at least 4 px from any non-skin (the easy case);
  text   - within 8 px of text or a watermark (`artefacts.mark_parts`), on skin, the text left visible;
  edge   - touching the frame's edge;
  drape  - within 3 px of non-skin (drapes, background, clothing: the photo's non-skin mask).
Fills:
  telea        - cv2.inpaint Telea, no grain
  telea+grain  - v1.1's CPU stand-in (Telea + seeded grain of the ring's detail spread)
  exemplar     - membrane colour + real skin texture from the nearest region of that shape
  quilt        - v1.2's fill (membrane colour + texture quilted from clean skin only)
  biharmonic   - scikit-image's biharmonic inpainting (smooth, no texture)
  fsr          - OpenCV contrib's frequency-selective reconstruction (cv2.xphoto, only when installed)
Metrics inside the hidden region against the true pixels: PSNR (dB), SSIM (mean over the region),
texture ratio = high-frequency energy (LoG variance) of the fill / of the truth (1 = same texture);
and the artefact detectors of `generation.healthy.artefacts` (how many fills each flags; the row `truth`
is the photo's own skin under the hole measured the same way: its flags are the detectors' false alarms).
Medians and worst cases over photos, per kind of hole. Writes a contact sheet of the worst cases
(`fill_quality.png`: truth | telea+grain | exemplar | quilt) and every figure as JSON (`fill_quality.json`).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from builder.core.config import HealthyConfig  # noqa: E402
from builder.core.progress import progress  # noqa: E402
from builder.core.schema import LABEL_LESION, LABEL_SKIN  # noqa: E402
from generation.fit import bbox as _bbox, valid_offsets  # noqa: E402
from generation.healthy import artefacts  # noqa: E402
from generation.healthy.backends import Job, OpenCVBackend  # noqa: E402
from generation.healthy.region import Region, feather_alpha  # noqa: E402
from generation.lesion_map.placement import choose_offset, with_margin  # noqa: E402
from generation.lesion_map.quality import fill_fidelity  # noqa: E402

METHODS = {"telea": HealthyConfig(opencv_grain=0.0), "telea+grain": HealthyConfig(),
           "exemplar": HealthyConfig(opencv_method="exemplar"), "quilt": HealthyConfig(opencv_method="quilt"),
           "biharmonic": None, "fsr": None}
KINDS = ("clean", "text", "edge", "drape")
SHEET = ("telea+grain", "exemplar", "quilt")


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


def hide(label_map: np.ndarray, seed: int, kind: str = "clean", rgb: np.ndarray | None = None) -> np.ndarray | None:
    """A lesion-shaped region of healthy skin (bool) of the given kind, or None when the shape fits
    nowhere even halved (or the photo has no text, for `text`)."""
    import cv2

    les = (label_map == LABEL_LESION).astype(np.uint8)
    if not les.any():
        return None
    les = cv2.dilate(les, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
    y0, x0, h, w = _bbox(les)
    shape = les[y0:y0 + h, x0:x0 + w]
    allowed, near = _where(label_map, kind, rgb)
    if allowed is None:
        return None
    rng = np.random.default_rng(seed)
    for _ in range(4):
        fits = valid_offsets(allowed, shape.astype(bool))
        if near is not None:  # fits that come within reach of the feature: not those that fit away from it
            fits &= ~valid_offsets(allowed & ~near, shape.astype(bool))
        off = choose_offset(fits, rng)
        if off is not None:
            mask = np.zeros(label_map.shape, bool)
            mask[off[0]:off[0] + shape.shape[0], off[1]:off[1] + shape.shape[1]] = shape > 0
            return mask
        shape = cv2.resize(shape, (max(1, shape.shape[1] // 2), max(1, shape.shape[0] // 2)),
                           interpolation=cv2.INTER_NEAREST)
    return None


def _where(label_map: np.ndarray, kind: str, rgb: np.ndarray | None):
    """(skin the hole may cover (uint8), pixels it must come near (bool) or None) for a kind of hole."""
    skin = (label_map == LABEL_SKIN).astype(np.uint8)
    if kind == "clean":
        return with_margin(skin, 4), None
    if kind == "text":
        text, _ = artefacts.mark_parts(rgb)
        if not text.any():
            return None, None
        return (skin.astype(bool) & ~artefacts.dilate(text, 2)).astype(np.uint8), artefacts.dilate(text, 8)
    if kind == "edge":
        frame = np.ones(skin.shape, bool)
        frame[1:-1, 1:-1] = False
        return skin, frame
    non_skin = label_map != LABEL_SKIN
    if not (non_skin & (label_map != LABEL_LESION)).any():
        return None, None
    return skin, artefacts.dilate(non_skin & (label_map != LABEL_LESION), 3)


def fill(method: str, rgb: np.ndarray, label_map: np.ndarray, mask: np.ndarray, seed: int) -> np.ndarray:
    hidden = rgb.copy()
    hidden[mask] = 0  # the truth is never readable by a fill
    if METHODS[method] is None:
        out = _library_fill(method, hidden, mask)
    else:
        backend = OpenCVBackend(METHODS[method])
        ys, xs = np.nonzero(mask)
        region = Region(mask=mask, alpha=feather_alpha(mask, 0), box=(int(xs.min()), int(ys.min()),
                                                                      int(xs.max()) + 1, int(ys.max()) + 1))
        job = Job(hidden, region, None, seed, skin=(label_map == LABEL_SKIN) & ~mask)
        x0, y0, x1, y1 = backend.window(job)
        out = hidden.copy()
        out[y0:y1, x0:x1] = backend.generate([job])[0]
    out[~mask] = rgb[~mask]
    return out


def _library_fill(method: str, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if method == "biharmonic":
        from skimage.restoration import inpaint_biharmonic

        return np.clip(np.rint(inpaint_biharmonic(hidden, mask, channel_axis=-1) * 255), 0, 255).astype(np.uint8)
    import cv2

    out = np.zeros_like(hidden)
    cv2.xphoto.inpaint(hidden, (~mask).astype(np.uint8), out, cv2.xphoto.INPAINT_FSR_FAST)
    return out


def available() -> list[str]:
    import cv2

    return [m for m in METHODS if m != "fsr" or hasattr(cv2, "xphoto")]


def run_case(name: str, kind: str, rgb: np.ndarray, lm: np.ndarray, mask: np.ndarray, seed: int,
             methods: list[str]) -> dict:
    skin = (lm == LABEL_SKIN) & ~mask
    fills = {m: fill(m, rgb, lm, mask, seed) for m in methods}
    scores = {}
    for m, f in fills.items():
        scores[m] = {**fill_fidelity(f, rgb, mask), **artefacts.measure(f, rgb, mask, skin)}
        scores[m]["flags"] = artefacts.fired(scores[m])
    # the photo's own skin under the hole, measured as a fill would be: what a detector flags here is a
    # false alarm (PSNR infinite, SSIM and texture ratio 1 by definition)
    scores["truth"] = {"psnr": float("inf"), "ssim": 1.0, "texture_ratio": 1.0,
                       **artefacts.measure(rgb, rgb, mask, skin)}
    scores["truth"]["flags"] = artefacts.fired(scores["truth"])
    return {"name": name, "kind": kind, "pixels": int(mask.sum()), "truth": rgb, "mask": mask,
            "fills": {m: fills[m] for m in SHEET if m in fills}, "scores": scores}


def contact_sheet(cases: list, path: Path, n: int = 12) -> None:
    """The n cases where quilt's PSNR is lowest, then the rest by exemplar's flags (the worst first)."""
    from PIL import Image, ImageDraw

    cell = 200
    worst = sorted(cases, key=lambda c: (-len(c["scores"]["exemplar"]["flags"]), c["scores"]["quilt"]["psnr"]))[:n]
    cols = ("truth",) + SHEET
    sheet = Image.new("RGB", (len(cols) * cell, len(worst) * (cell + 28) + 16), "white")
    draw = ImageDraw.Draw(sheet)
    for k, t in enumerate(cols):
        draw.text((k * cell + 4, 2), t, fill="black")
    for i, c in enumerate(worst):
        ys, xs = np.nonzero(c["mask"])
        m = max(12, int(np.ptp(ys) + np.ptp(xs)) // 4)
        box = (max(0, xs.min() - m), max(0, ys.min() - m), xs.max() + m, ys.max() + m)
        y = 16 + i * (cell + 28)
        for k, img in enumerate([c["truth"]] + [c["fills"][s] for s in SHEET]):
            tile = Image.fromarray(img).crop(box)
            tile.thumbnail((cell - 4, cell - 4))
            sheet.paste(tile, (k * cell + 2, y))
            if k:
                sc = c["scores"][SHEET[k - 1]]
                draw.text((k * cell + 2, y + cell - 4), f"{sc['psnr']:.1f} dB {','.join(sc['flags']) or '-'}"[:34],
                          fill="black")
        draw.text((2, y + cell - 4), f"{c['name'][:8]} {c['kind']}", fill="black")
    sheet.save(path)


def summary(cases: list, methods: list[str]) -> dict:
    """Per kind (and `all`) and method: cases, medians, the worst PSNR and its photo, detector counts."""
    out = {}
    for kind in KINDS + ("all",):
        mine = [c for c in cases if kind in ("all", c["kind"])]
        if not mine:
            continue
        out[kind] = {}
        for m in methods:
            sc = [c["scores"][m] for c in mine]
            worst = min(mine, key=lambda c: c["scores"][m]["psnr"])
            out[kind][m] = {"cases": len(mine),
                            **{k: round(statistics.median(s[k] for s in sc), 4) for k in ("psnr", "ssim", "texture_ratio")},
                            "worst_psnr": round(worst["scores"][m]["psnr"], 2), "worst_photo": worst["name"][:8],
                            "flagged": {d: sorted(c["name"][:8] for c in mine if d in c["scores"][m]["flags"])
                                        for d in artefacts.DETECTORS}}
    return out


def print_tables(summ: dict, side: int, skipped: dict) -> None:
    print(f"healthy fill of hidden real skin: Fitzpatrick17k photos fitted to {side} px; holes per kind "
          + ", ".join(f"{k} {summ[k][next(iter(summ[k]))]['cases']}" for k in KINDS if k in summ)
          + f" (no place for the hole: {skipped})")
    short = {"copied_mark": "copied", "foreign_colour": "foreign", "seam": "seam", "tiling": "tiling",
             "flat_texture": "flat"}
    print(f"{'kind':<6} {'method':<12} {'PSNR dB':>8} {'worst':>6} {'SSIM':>6} {'texture':>8}  "
          + " ".join(f"{short[d]:>7}" for d in artefacts.DETECTORS))
    for kind, per in summ.items():
        for m, v in per.items():
            print(f"{kind:<6} {m:<12} {v['psnr']:>8.2f} {v['worst_psnr']:>6.1f} {v['ssim']:>6.3f} {v['texture_ratio']:>8.2f}  "
                  + " ".join(f"{len(v['flagged'][d]):>7}" for d in artefacts.DETECTORS))


def heal(data: Path) -> None:
    """Each photo's own lesion region (as the healthy stage makes it) healed at full size by each texture
    fill and v1.1's stand-in; which photos each detector flags (no truth here: these are the build's fills)."""
    from builder.core.config import HealthyConfig as HC
    from builder.core.config import load_config
    from generation.healthy.region import composite, inpaint_region

    rim_px = load_config("1.2").healthy.rim_px
    flagged = {m: {d: [] for d in artefacts.DETECTORS} for m in ("telea+grain", "exemplar", "quilt", "quilt+rim")}
    photos = load(data, 100_000)
    grown = []
    for name, rgb, lm in progress(photos, desc="heal"):
        plain = inpaint_region(lm, include_marker=True, dilate_px=3, feather_px=2)
        rimmed = inpaint_region(lm, include_marker=True, dilate_px=3, feather_px=2, rim_px=rim_px, rgb=rgb)
        grown.append(rimmed.pixels / plain.pixels - 1)
        for m in flagged:
            region = rimmed if m == "quilt+rim" else plain
            skin = (lm == LABEL_SKIN) & ~region.mask
            backend = OpenCVBackend(METHODS[m.split("+")[0]] if m != "telea+grain" else HC())
            job = Job(rgb, region, None, 7, skin=lm == LABEL_SKIN)
            x0, y0, x1, y1 = backend.window(job)
            generated = rgb.copy()
            generated[y0:y1, x0:x1] = backend.generate([job])[0]
            healed = composite(rgb, generated, region)
            for d in artefacts.fired(artefacts.measure(healed, rgb, region.mask, skin)):
                flagged[m][d].append(name[:8])
    print(f"the {len(photos)} photos' own lesions healed at full size: photos flagged per detector "
          f"(quilt+rim: v1.2's region, grown over the perilesional rim of up to {rim_px} px: "
          f"{sum(g > 0 for g in grown)} of {len(grown)} regions grown, median +{100 * statistics.median(grown):.0f}%, "
          f"most +{100 * max(grown):.0f}%)")
    for m, per in flagged.items():
        print(f"{m:<12} " + "; ".join(f"{d} {len(ids)}" + (f" ({', '.join(ids)})" if ids else "") for d, ids in per.items()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path(os.environ.get("CGDDI_SHARED_DATA", ROOT.parent / "shared" / "data")))
    p.add_argument("--side", type=int, default=512, help="photos are fitted into side x side first")
    p.add_argument("--out", type=Path, default=ROOT / "out" / "benchmarks")
    p.add_argument("--heal", action="store_true", help="heal the photos' own lesions instead; print detector flags")
    args = p.parse_args()
    if args.heal:
        return heal(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    methods = available()
    cases, skipped = [], {k: 0 for k in KINDS}
    for k, (name, rgb, lm) in enumerate(progress(load(args.data, args.side), desc="fill benchmark")):
        for j, kind in enumerate(KINDS):
            mask = hide(lm, 4 * k + j if kind != "clean" else k, kind, rgb)
            if mask is None:
                skipped[kind] += 1
                continue
            cases.append(run_case(name, kind, rgb, lm, mask, k, methods))
    sheet = args.out / "fill_quality.png"
    contact_sheet(cases, sheet)
    summ = summary(cases, ["truth", *methods])
    print_tables(summ, args.side, skipped)
    (args.out / "fill_quality.json").write_text(json.dumps({"side": args.side, "skipped": skipped, "summary": summ},
                                                           indent=1) + "\n")
    print(f"contact sheet: {sheet}; figures: {args.out / 'fill_quality.json'}")
    print(json.dumps({m: {"median_psnr_db": None if m == "truth" else v["psnr"],
                          "worst_psnr_db": None if m == "truth" else v["worst_psnr"],
                          "holes_flagged": {d: len(ids) for d, ids in v["flagged"].items()}}
                      for m, v in summ["all"].items()}))


if __name__ == "__main__":
    main()
