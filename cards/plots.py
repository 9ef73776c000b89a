"""Card figures as PNG files: row distributions, and a sample grid (tone x samples) per kind.

Deterministic: samples are the first rows by sample_id in each cell, and PNGs carry no timestamps,
so the same records give the same bytes (the manifest hashes these files too).
"""
from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

from builder.core.schema import KINDS, SKIN_TONES, SPLITS, Record

THUMB = 128
PER_CELL = 4
TONE_COLORS = {"light": "#f1c27d", "medium": "#c68642", "dark": "#5c3317"}


def write_plots(out_dir: Path, records: list[Record], store_of: dict) -> list[str]:
    """Write `plots/*.png`; returns their paths relative to `out_dir`, sorted."""
    (out_dir / "plots").mkdir(parents=True, exist_ok=True)
    paths = [_distribution(out_dir, records)]
    for kind in KINDS:
        mine = [r for r in records if r.kind == kind]
        if mine:
            paths.append(_sample_grid(out_dir, kind, mine, store_of[kind]))
    return sorted(paths)


def _distribution(out_dir: Path, records: list[Record]) -> str:
    """Three panels: rows per kind x tone, malignant share per tone x split, top diseases."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    kinds = [k for k in KINDS if any(r.kind == k for r in records)]
    by = Counter((r.kind, r.skin_tone) for r in records)
    _grouped_bars(axes[0], kinds, {t: [by[(k, t)] for k in kinds] for t in SKIN_TONES}, "rows")
    axes[0].set_title("Rows per kind and skin tone")
    splits = [s for s in SPLITS if any(r.split == s for r in records)]
    share = {}
    for t in SKIN_TONES:
        share[t] = []
        for s in splits:
            cell = [r for r in records if r.split == s and r.skin_tone == t and r.disease != "healthy"]
            share[t].append(100 * sum(r.malignant for r in cell) / len(cell) if cell else 0)
    _grouped_bars(axes[1], splits, share, "% malignant (lesion rows)")
    axes[1].set_title("Malignant share per split and tone")
    top = Counter(r.disease for r in records).most_common(15)[::-1]
    axes[2].barh([d for d, _ in top], [n for _, n in top], color="#4c72b0")
    axes[2].set_title("Most frequent diseases")
    axes[2].tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    rel = "plots/distribution.png"
    _save(fig, out_dir / rel)
    plt.close(fig)
    return rel


def _grouped_bars(ax, groups: list[str], series: dict[str, list[float]], ylabel: str) -> None:
    width = 0.8 / max(1, len(series))
    for i, (tone, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, values, width, label=tone, color=TONE_COLORS.get(tone))
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(ylabel)
    ax.legend(title="skin tone", fontsize=8)


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, metadata={"Software": None})
    path.write_bytes(buf.getvalue())


def _sample_grid(out_dir: Path, kind: str, records: list[Record], store) -> str:
    """Rows = skin tones, columns = the first PER_CELL samples by id (blank where a tone has fewer)."""
    from PIL import Image, ImageDraw, ImageOps

    label_w = 70
    grid = Image.new("RGB", (label_w + PER_CELL * THUMB, len(SKIN_TONES) * THUMB), "white")
    draw = ImageDraw.Draw(grid)
    for row, tone in enumerate(SKIN_TONES):
        draw.text((6, row * THUMB + THUMB // 2 - 6), tone, fill="black")
        cell = sorted((r for r in records if r.skin_tone == tone), key=lambda r: r.sample_id)[:PER_CELL]
        for col, r in enumerate(cell):
            with Image.open(io.BytesIO(store.read_image_bytes(r))) as im:
                thumb = ImageOps.fit(im.convert("RGB"), (THUMB, THUMB), Image.BILINEAR)  # keep aspect: crop
            grid.paste(thumb, (label_w + col * THUMB, row * THUMB))
    rel = f"plots/samples_{kind}.png"
    buf = io.BytesIO()
    grid.save(buf, format="PNG", optimize=False, compress_level=6)
    (out_dir / rel).write_bytes(buf.getvalue())
    return rel
