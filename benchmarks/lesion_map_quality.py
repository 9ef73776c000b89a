"""Lesion-map quality on the 39 real Fitzpatrick17k photos: plan delivered, per-disease coverage, donor-skin halo.

Run: python benchmarks/lesion_map_quality.py [--budget 200] [--out out/benchmarks]

The real photos are ingested at full size, healed with v1.2's healthy stage (the exemplar CPU fill;
which skin a lesion may land on does not depend on the fill, so delivery is the same), then one
plan (same budget and seed) is mapped four ways side by side:
  before   - the toolkit's first lesion mapping: donor resized to the base's short side, no fallback (rejects)
  v1.1     - the method: donor at its own scale, pads 10/5/0, then kept in place
  v1.2 alpha - v1.2's fallbacks (downscale, other base) with the method's alpha composite
  v1.2 poisson - the same placements, Poisson (gradient-domain, log-RGB) blending
  v1.2 screen - the same placements, `poisson_screen` (v1.2 before `lesion_lab`: as Poisson for pixels
             darker than the donor's skin; brighter ones keep their distance to white in proportion)
  v1.2 unbound - v1.2 without the size bound and the mostly-lesion base rule (other placements)
  v1.2     - v1.2: `lesion_lab` (per pixel in CIE Lab) with the size bound
Size: the pasted lesion's pixels over the base's skin | lesion | marker pixels, and over the frame.
Halo: CIEDE2000 between the mean Lab colour of a 3 px ring just inside the pasted lesion's edge and
of the base skin in a 3 px ring just outside the footprint, per image; medians over the images.
Clipped: the share of placed-lesion pixels with a channel at 255, over the rows whose donor skin is
darker than the base's (where a ratio brightens a lesion past white).
Writes a before/after contact sheet (`lesion_map_halo.png`) beside the table.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CGDDI_PROGRESS", "0")

from builder.core.config import load_config  # noqa: E402
from builder.core.store import StageStore  # noqa: E402
from builder.core.schema import SKIN_TONES as TONES  # noqa: E402
from generation.lesion_map.quality import halo_delta_e, lesion_footprint as footprint  # noqa: E402


def prepare(data: Path, work: Path) -> tuple[StageStore, StageStore]:
    from curation.source.ingest import ingest_source
    from generation.healthy.stage import run_healthy

    real, healthy = StageStore(work / "real"), StageStore(work / "healthy")
    ingest_source(data / "fitz17k_lesions", None, real, workers=1)
    run_healthy(real, healthy, load_config("1.2").healthy)
    return healthy, real


def run(name: str, cfg, bases, donors, work: Path) -> dict:
    from generation.lesion_map.stage import delivery, run_lesion_map

    out = StageStore(work / name.replace(" ", "_"))
    t0 = time.perf_counter()
    run_lesion_map(bases, donors, out, cfg)
    seconds = time.perf_counter() - t0
    recs = out.records()
    halos, clipped, lesion_px, shares = {}, {}, 0, []
    for r in recs:
        lesion, support, skin = footprint(r, bases, donors)
        shares.append((lesion.sum() / max(1, skin.sum()), lesion.mean()))
        img = out.read_image(r.sample_id)
        de = halo_delta_e(img, lesion, support, skin)
        if de is not None:
            halos[r.params["plan_row"]] = de
        if TONES.index(r.params["donor_skin_tone"]) > TONES.index(r.params["base_skin_tone"]):
            clipped[r.params["plan_row"]] = int((img[lesion] == 255).any(axis=1).sum())
            lesion_px += int(lesion.sum())
    d = delivery(out)
    per = {}
    for c in d["cells"]:
        per.setdefault(c["disease"], [0, 0])
        per[c["disease"]][0] += c["delivered"]
        per[c["disease"]][1] += c["planned"]
    return {"name": name, "store": out, "records": recs, "shares": np.asarray(shares).reshape(-1, 2), "delivery": d, "per_disease": per, "halos": halos,
            "seconds": seconds, "clipped": clipped, "rejected": __import__("collections").Counter(
                j.reason for j in out.rejections()), "clipped_share": sum(clipped.values()) / max(lesion_px, 1), "cross_tone_halos": [halos[r.params["plan_row"]] for r in recs
                                                      if r.params["plan_row"] in halos
                                                      and r.params["base_skin_tone"] != r.params["donor_skin_tone"]]}


def contact_sheet(runs: dict, bases: StageStore, donors: StageStore, path: Path, n: int = 8) -> None:
    """Rows of cross-tone lesion maps: base | alpha | Poisson | Poisson-screen (v1.2), cropped around the
    lesion, with dE: the rows alpha leaves the strongest halo on, then those Poisson clips most."""
    from PIL import Image, ImageDraw

    cols = [runs["v1.2 alpha"], runs["v1.2 poisson"], runs["v1.2"]]
    by_row = [{r.params["plan_row"]: r for r in c["records"]} for c in cols]
    common = [r for r in cols[2]["records"] if all(r.params["plan_row"] in b for b in by_row)
              and r.params["base_skin_tone"] != r.params["donor_skin_tone"] and r.params["plan_row"] in cols[2]["halos"]]
    by_halo = sorted(common, key=lambda r: -cols[0]["halos"].get(r.params["plan_row"], 0))
    by_halo = by_halo[::max(1, len(by_halo) // (n - 2))][:n - 2]
    by_clip = sorted((r for r in common if r not in by_halo),
                     key=lambda r: -cols[1]["clipped"].get(r.params["plan_row"], 0))[:2]
    picks = by_halo + by_clip
    cell = 220
    sheet = Image.new("RGB", (4 * cell, len(picks) * (cell + 18) + 18), "white")
    draw = ImageDraw.Draw(sheet)
    for k, title in enumerate(("base (healthy)", "alpha composite", "Poisson", "Poisson-screen (v1.2)")):
        draw.text((k * cell + 4, 2), title, fill="black")
    for i, rec in enumerate(picks):
        row = rec.params["plan_row"]
        _, support, _ = footprint(rec, bases, donors)
        ys, xs = np.nonzero(support)
        m = max(20, int(np.ptp(ys) + np.ptp(xs)) // 4)
        box = (max(0, xs.min() - m), max(0, ys.min() - m), xs.max() + m, ys.max() + m)
        imgs = [bases.read_image(rec.base_id)] + [c["store"].read_image(b[row].sample_id) for c, b in zip(cols, by_row)]
        y = 18 + i * (cell + 18)
        for k, img in enumerate(imgs):
            tile = Image.fromarray(img).crop(box)
            tile.thumbnail((cell - 4, cell - 4))
            sheet.paste(tile, (k * cell + 2, y))
        de = [c["halos"].get(row, float("nan")) for c in cols]
        draw.text((2, y + cell - 2), f"{rec.disease[:28]}: base {rec.params['base_skin_tone']} <- donor "
                  f"{rec.params['donor_skin_tone']}; halo dE {de[0]:.1f} / {de[1]:.1f} / {de[2]:.1f}; "
                  f"clipped px {cols[1]['clipped'].get(row, 0)} / {cols[2]['clipped'].get(row, 0)}", fill="black")
    sheet.save(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path(os.environ.get("CGDDI_SHARED_DATA", ROOT.parent / "shared" / "data")))
    p.add_argument("--budget", type=int, default=200)
    p.add_argument("--out", type=Path, default=ROOT / "out" / "benchmarks")
    args = p.parse_args()
    work = args.out / "lesion_map_quality_work"
    shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    bases, donors = prepare(args.data, work)
    v11 = dataclasses.replace(load_config("1.1").lesion_map, budget=args.budget)
    v12 = dataclasses.replace(load_config("1.2").lesion_map, budget=args.budget)
    settings = {"before": dataclasses.replace(v11, donor_resize="base_short_side", fallbacks=()),
                "v1.1": v11, "v1.2 alpha": dataclasses.replace(v12, blend="alpha"),
                "v1.2 poisson": dataclasses.replace(v12, blend="poisson"),
                "v1.2 screen": dataclasses.replace(v12, blend="poisson_screen"),
                "v1.2 unbound": dataclasses.replace(v12, max_lesion_share=None, max_base_lesion=None), "v1.2": v12}
    runs = {name: run(name, cfg, bases, donors, work) for name, cfg in settings.items()}
    sheet = args.out / "lesion_map_halo.png"
    contact_sheet(runs, bases, donors, sheet)
    print(f"lesion mapping on {len(donors.records())} real Fitzpatrick17k photos (full size), plan of "
          f"{args.budget} rows, seed {v11.seed}; halo = CIEDE2000, ring inside lesion edge vs base skin outside")
    head = (f"{'setting':<12} {'blend':<14} {'delivered':>10} {'kept in place':>14} {'diseases full':>14} "
            f"{'worst disease':>14} {'halo median dE':>15} {'cross-tone dE':>14} {'clipped':>8} {'s':>6}")
    print(head)
    for name, r in runs.items():
        d, per = r["delivery"], r["per_disease"]
        kept = d["placement"].get("kept_in_place", 0)
        full = sum(got == want for got, want in per.values())
        worst = min(got / want for got, want in per.values())
        print(f"{name:<12} {settings[name].blend:<14} {d['delivered']:>4}/{d['planned']:<5} {kept:>14} "
              f"{full:>6}/{len(per):<7} {worst:>14.0%} {statistics.median(r['halos'].values()):>15.2f} "
              f"{statistics.median(r['cross_tone_halos']):>14.2f} {r['clipped_share']:>8.2%} {r['seconds']:>6.1f}")
    print("pasted lesion size, share of the base's skin (median / 90th pct / max) and of the frame (median / max):")
    for name, r in runs.items():
        sk, fr = r["shares"][:, 0], r["shares"][:, 1]
        print(f"  {name:<13} skin {np.median(sk):.1%} / {np.percentile(sk, 90):.1%} / {sk.max():.1%}   "
              f"frame {np.median(fr):.1%} / {fr.max():.1%}   rejected {dict(r['rejected'])}")
    v12r = runs["v1.2"]
    print("per disease, v1.2 delivered / planned: " + "; ".join(
        f"{k} {a}/{b}" for k, (a, b) in sorted(v12r["per_disease"].items())))
    print(f"contact sheet: {sheet}")
    a, b, c = (statistics.median(runs[k]["halos"].values()) for k in ("v1.2 alpha", "v1.2 poisson", "v1.2"))
    sc = statistics.median(runs["v1.2 screen"]["halos"].values())
    headline = {"photos": len(donors.records()), "planned": args.budget}
    for name, key in (("before", "before"), ("v1.1", "v1_1"), ("v1.2", "v1_2")):
        d = runs[name]["delivery"]
        headline[f"delivered_fraction_{key}"] = round(d["delivered"] / d["planned"], 4)
        headline[f"diseases_missing_{key}"] = sum(got == 0 for got, _ in runs[name]["per_disease"].values())
    headline.update({"kept_in_place_v1_1": runs["v1.1"]["delivery"]["placement"].get("kept_in_place", 0),
                     "halo_median_de_alpha": round(a, 3), "halo_median_de_poisson": round(b, 3),
                     "halo_median_de_poisson_screen": round(sc, 3), "halo_median_de_lesion_lab": round(c, 3), "halo_reduction_x_v1_2": round(a / c, 2),
                     "halo_reduction_x_poisson": round(a / b, 2),
                     "clipped_share_alpha": round(runs["v1.2 alpha"]["clipped_share"], 4),
                     "clipped_share_poisson": round(runs["v1.2 poisson"]["clipped_share"], 4),
                     "clipped_share_poisson_screen": round(runs["v1.2 screen"]["clipped_share"], 4),
                     "clipped_share_lesion_lab": round(runs["v1.2"]["clipped_share"], 4),
                     "cross_tone_halo_median_de_alpha": round(statistics.median(runs["v1.2 alpha"]["cross_tone_halos"]), 3),
                     "cross_tone_halo_median_de_poisson": round(statistics.median(runs["v1.2 poisson"]["cross_tone_halos"]), 3),
                     "cross_tone_halo_median_de_poisson_screen": round(statistics.median(runs["v1.2 screen"]["cross_tone_halos"]), 3),
                     "cross_tone_halo_median_de_lesion_lab": round(statistics.median(runs["v1.2"]["cross_tone_halos"]), 3)})
    print(json.dumps(headline))


if __name__ == "__main__":
    main()
