"""Pasted-lesion colour across skin tones, and review sheets of automatic masks and blends, on the 39 real
Fitzpatrick17k photos.

Colour: for N seeded (donor, base) pairs whose Fitzpatrick types differ by 2 or more (photos at up to
240 px, hand masks; a base's own lesion is not a landing place, so no healing is needed), each blend
pastes the same donor lesion (`map_lesion`, pads 10/5/0, downscales to 0.3). Per image,
`quality.lesion_colour_error`: CIEDE2000 between the donor lesion's mean Lab and the pasted lesion's
minus the skin's move (base skin - donor skin), and the change of the lesion's hue angle against its
skin. The table gives median / 90th percentile / max per blend, and the same by direction (donor darker
or lighter than the base), and the median edge contrast (`quality.halo_delta_e`, the footprint taken as
the pasted lesion grown by 4 px).

Sheets (look at them): `blend_worst.png`, the 12 pairs with the largest colour error under
`poisson_screen` (v1.2 before), donor | poisson_screen | lesion_lab; `masks_vetted.png`, the palm and
watermarked photos and the lowest-confidence masks accepted after vetting: photo | cpu mask before
vetting | after (red lesion, dark background, yellow ruler; title: confidence before -> after).

  python benchmarks/lesion_colour.py [--pairs 120] [--out out/benchmarks]
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
DATA = Path(os.environ.get("CGDDI_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data") \
    / "fitz17k_lesions"
BLENDS = ("alpha", "poisson_screen", "lesion_lab")
SHOWN = ("0d8457af", "0a55e2e0", "0a102c96", "0f02445f", "1d21bcb4", "1d76114e")


def photos(side: int = 240):
    import cv2

    from builder.core.store import decode_rgb
    from curation.source.masks import read_binary_masks

    out = []
    for r in sorted(csv.DictReader(open(DATA / "metadata.csv")), key=lambda r: r["md5hash"]):
        rgb = decode_rgb((DATA / r["image_file"]).read_bytes())
        lm = read_binary_masks(DATA / r["mask_lesions"], DATA / r["mask_nonskin"], *rgb.shape[:2])
        out.append((r["md5hash"][:8], int(r["fitzpatrick_scale"]), rgb, lm))
    small = []
    for k, fitz, rgb, lm in out:
        s = min(1.0, side / max(rgb.shape[:2]))
        size = (round(rgb.shape[1] * s), round(rgb.shape[0] * s))
        small.append((k, fitz, cv2.resize(rgb, size, interpolation=cv2.INTER_AREA),
                      cv2.resize(lm, size, interpolation=cv2.INTER_NEAREST)))
    return out, small


def colour_table(small, n_pairs: int):
    from builder.core.errors import PlacementError
    from builder.core.schema import LABEL_LESION, LABEL_SKIN
    from generation.lesion_map.placement import map_lesion
    import cv2

    from generation.lesion_map.quality import halo_delta_e, lesion_colour_error

    pairs = [(i, j) for i in range(len(small)) for j in range(len(small))
             if i != j and abs(small[i][1] - small[j][1]) >= 2]
    pick = np.random.default_rng(0).choice(len(pairs), min(n_pairs, len(pairs)), replace=False)
    rows = []
    for n in pick:
        i, j = pairs[int(n)]
        (dk, df, drgb, dlm), (bk, bf, brgb, blm) = small[i], small[j]
        bmap = np.where(blm == LABEL_LESION, 0, blm).astype(np.uint8)  # the base's own lesion: no landing
        row = {"donor": dk, "base": bk, "darker_donor": df > bf}
        for blend in BLENDS:
            try:
                m = map_lesion(brgb, bmap, drgb, dlm, pads=(10, 5, 0), rotate=True, dilate_px=1, feather=1.5,
                               seed=int(n), scales=(1.0, 0.8, 0.64, 0.5, 0.4, 0.3), blend=blend, donor_resize="none")
            except PlacementError:
                break
            pasted = (m.label_map == LABEL_LESION) & (bmap != LABEL_LESION)
            err = lesion_colour_error(drgb, dlm, m.rgb, pasted, bmap == LABEL_SKIN)
            support = cv2.dilate(pasted.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0  # the feathered edge
            halo = halo_delta_e(m.rgb, pasted, support, bmap == LABEL_SKIN)
            if err is None or halo is None:
                break
            row[blend] = ((*err, halo), m.rgb, pasted)
        if all(b in row for b in BLENDS):
            rows.append(row)
    return rows


def print_table(rows) -> None:
    print(f"{len(rows)} cross-tone pairs (Fitzpatrick types 2+ apart), same placement per blend\n")
    print(f"{'blend':<16}{'pairs':<22}{'rel dE2000 med / p90 / max':>30}{'hue change deg med / p90 / max':>34}"
          f"{'edge dE med':>13}")
    for blend in BLENDS:
        for label, keep in (("all", lambda r: True), ("donor darker", lambda r: r["darker_donor"]),
                            ("donor lighter", lambda r: not r["darker_donor"])):
            e = np.array([r[blend][0] for r in rows if keep(r)])
            if len(e):
                rel, hue = np.percentile(e[:, 0], [50, 90, 100]), np.percentile(e[:, 1], [50, 90, 100])
                print(f"{blend:<16}{label + f' ({len(e)})':<22}{' / '.join(f'{v:.1f}' for v in rel):>30}"
                      f"{' / '.join(f'{v:.1f}' for v in hue):>34}{np.median(e[:, 2]):>13.1f}")


def _tile(img, width=240):
    import cv2

    return cv2.resize(img, (width, max(1, round(width * img.shape[0] / img.shape[1]))), interpolation=cv2.INTER_AREA)


def _label(img, text):
    import cv2

    out = img.copy()
    cv2.putText(out, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3)
    cv2.putText(out, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1)
    return out


def _stack(rows_of_tiles, path: Path) -> None:
    import cv2

    rows = []
    for tiles in rows_of_tiles:
        h = max(t.shape[0] for t in tiles)
        rows.append(np.concatenate([np.pad(t, ((0, h - t.shape[0]), (0, 4), (0, 0))) for t in tiles], axis=1))
    w = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 4), (0, w - r.shape[1]), (0, 0))) for r in rows], axis=0)
    cv2.imwrite(str(path), np.ascontiguousarray(sheet[..., ::-1]))


def blend_sheet(rows, small, path: Path) -> None:
    donors = {k: rgb for k, _, rgb, _ in small}
    worst = sorted(rows, key=lambda r: -r["poisson_screen"][0][0])[:12]
    out = []
    for r in worst:
        tiles = [_label(_tile(donors[r["donor"]]), f"donor {r['donor']}")]
        for blend in ("poisson_screen", "lesion_lab"):
            (rel, hue, _), img, pasted = r[blend]
            ys, xs = np.nonzero(pasted)
            crop = img[max(0, ys.min() - 20):ys.max() + 20, max(0, xs.min() - 20):xs.max() + 20]
            tiles.append(_label(_tile(crop), f"{blend} dE {rel:.0f} hue {hue:.0f}"))
        out.append(tiles)
    _stack(out, path)


def mask_sheet(full, path: Path) -> list[str]:
    from curation.source.automasks.cpu import segment
    from curation.source.automasks.sheets import overlay
    from curation.source.automasks.vet import vet

    results = {}
    for k, _, rgb, _ in full:
        raw = segment(rgb)
        results[k] = (rgb, raw, vet(rgb, raw.label_map, raw.confidence))
    accepted = sorted((v[2].confidence, k) for k, v in results.items() if v[2].confidence >= 0.4)
    chosen = list(SHOWN) + [k for _, k in accepted if k not in SHOWN][:12 - len(SHOWN)]
    out = []
    for k in chosen:
        rgb, raw, checked = results[k]
        out.append([_label(_tile(rgb), k), _label(_tile(overlay(rgb, raw.label_map)), f"before {raw.confidence:.2f}"),
                    _label(_tile(overlay(rgb, checked.label_map)), f"after {checked.confidence:.2f}")])
    _stack(out, path)
    return [f"{k}: {results[k][1].confidence:.2f} -> {results[k][2].confidence:.2f} {results[k][2].factors}"
            for k in chosen]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=120)
    ap.add_argument("--out", type=Path, default=Path("out/benchmarks"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    full, small = photos()
    rows = colour_table(small, args.pairs)
    print_table(rows)
    blend_sheet(rows, small, args.out / "blend_worst.png")
    for line in mask_sheet(full, args.out / "masks_vetted.png"):
        print(line)
    print(f"\nsheets: {args.out / 'blend_worst.png'}, {args.out / 'masks_vetted.png'}")


if __name__ == "__main__":
    main()
