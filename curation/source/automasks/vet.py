"""What an automatic mask's lesion must not be: text, background, a ruler, or a whole body part.

Every backend's label map passes through `vet` before its confidence is compared with
`masks.min_confidence`:

- text and watermarks (thin grey strokes, near white or near black, in clusters of several strokes:
  letters, not a lesion's scale, which keeps some colour) are cut out of the lesion and labelled
  background (0): they are never healed and never pasted;
- rulers (a non-skin-coloured band at the frame's edge carrying tick marks or digits) are labelled
  3, as sDDI labels them, and surgical ink keeps the backend's label 2;
- background by colour (paper, sheets, walls: bright and not yellowish; near black; green and blue
  drapes; `non_skin`) is cut out of the lesion and labelled background;
- the confidence is multiplied by how lesion-like the outline is (`plausibility`): a lesion is
  surrounded by skin (a mask whose outer ring is mostly background is a body part against a
  backdrop: a palm on white), covers a part of the skin (not nearly all of it), and is not text.

The thresholds were chosen on the first 20 of the 39 Fitzpatrick17k photos in md5 order and checked
on the other 19 (benchmarks/masks.py --vet); the photos that tuned them are named in `TUNED_ON`.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from builder.core import colour
from builder.core.schema import LABEL_BACKGROUND, LABEL_LESION, LABEL_MARKER, LABEL_RULER, LABEL_SKIN

VERSION = "1"
TUNED_ON = "the first 20 of the 39 Fitzpatrick17k photos with hand masks, in md5 order (00f1b7bb to 0e16117b)"
TEXT_SIDE = 640        # text is found at up to this many pixels on the longest side (strokes stay strokes)
STROKE_CONTRAST = 60   # a stroke is this much brighter / darker than its 9x9 surroundings
TEXT_MIN_STROKES = 3   # a text row holds at least this many letters
STROKE_PART_SHARE = 0.15  # a lesion part this much stroke pixels is text (the review flag's threshold)
MINOR_PART = 0.25     # a lesion part beside a ruler holding under this share of the lesion is the ruler's edge
RULER_TICKS = 9        # a ruler band holds at least this many ticks
LETTER_PX = 5          # a letter is at least this many pixels tall (at TEXT_SIDE) ...
LETTER_MAX = 0.08      # ... and at most this share of the longest side
TEXT_EDGE = 0.15       # text rows lie within this share of the longest side from the frame's edge
RING = 0.04            # the ring around a lesion is this share of the longest side wide
MAX_RING_BACKGROUND = 0.45  # plausibility 0 when this share of the ring (inside the frame) is background
MAX_SKIN_SHARE = 0.92  # plausibility 0 when the lesion is this share of lesion + skin
MAX_TEXT_SHARE = 0.05  # plausibility 0 when this share of the lesion is still text strokes
TICK_CONTRAST = 40    # ruler ticks and digits: thin and this much darker or brighter than the ruler
MIN_BACKGROUND_BLOB = 0.004  # background-coloured blobs under this share of the frame are not background


@dataclasses.dataclass
class Vetted:
    """The cleaned label map, the confidence after plausibility, and what was measured."""

    label_map: np.ndarray
    confidence: float
    factors: dict

    def detail(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.factors.items())


lab = colour.lab8  # CIE L*a*b* through OpenCV (L 0-100)


def non_skin(rgb: np.ndarray) -> np.ndarray:
    """`builder.core.colour.non_skin` of the photo: colours no skin or lesion has."""
    return colour.non_skin(lab(rgb))


def background(rgb: np.ndarray) -> np.ndarray:
    """`non_skin` pixels in blobs that touch the frame's edge and cover at least MIN_BACKGROUND_BLOB of it
    (opened: no specks; a dark fold or a white crust inside a lesion is not a backdrop)."""
    import cv2

    m = cv2.morphologyEx(non_skin(rgb).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, parts, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    h, w = m.shape
    x, y, bw, bh, area = (stats[:, i] for i in range(5))
    edge = (x == 0) | (y == 0) | (x + bw == w) | (y + bh == h)
    keep = np.flatnonzero(edge & (area >= MIN_BACKGROUND_BLOB * m.size))
    return np.isin(parts, keep[keep > 0])


def strokes(rgb: np.ndarray) -> np.ndarray:
    """Thin high-contrast strokes (white or black top-hat over 9x9) that are grey and near white or black."""
    return colour.grey_strokes(rgb, STROKE_CONTRAST, max_chroma=14, bright=78, dark=22)


def text(rgb: np.ndarray) -> np.ndarray:
    """Text and watermarks at the photo's size: strokes shaped like letters (`letters`) that stand in a row of
    at least TEXT_MIN_STROKES of similar height, with their surroundings (anti-aliased edges, counters)."""
    import cv2

    h, w = rgb.shape[:2]
    s = min(1.0, TEXT_SIDE / max(h, w))
    work = rgb if s == 1.0 else cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    st = strokes(work).astype(np.uint8)
    boxes = letters(st)
    out = np.zeros(st.shape, bool)
    for row in text_rows(boxes):
        if not _at_edge(row, st.shape):
            continue
        for x, y, bw, bh in row:
            pad = max(2, bh // 4)
            y0, x0 = max(0, y - pad), max(0, x - pad)
            out[y0:y + bh + pad, x0:x + bw + pad] |= cv2.dilate(st[y0:y + bh + pad, x0:x + bw + pad],
                                                                np.ones((5, 5), np.uint8)) > 0
    if s != 1.0:
        out = cv2.resize(out.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    return out


def _at_edge(row: list[tuple[int, int, int, int]], shape: tuple[int, int]) -> bool:
    """Whether a text row lies within TEXT_EDGE of the frame's edge (captions and watermarks do; a lesion's
    scale in mid-frame can line up like letters but does not lie there)."""
    h, w = shape
    x0, y0 = min(b[0] for b in row), min(b[1] for b in row)
    x1, y1 = max(b[0] + b[2] for b in row), max(b[1] + b[3] for b in row)
    m = TEXT_EDGE * max(h, w)
    return y0 < m or x0 < m or y1 > h - m or x1 > w - m


def letters(st: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Boxes (x, y, w, h) of stroke components shaped like a letter: LETTER_PX tall or more (at most
    LETTER_MAX of the longest side), partly filled (not a dot, not a hair), no wider than 1.6 heights; a
    wider one (letters that touch, up to 8 heights) is split at the columns where its strokes thin out."""
    import cv2

    n, parts, stats, _ = cv2.connectedComponentsWithStats(st, connectivity=8)
    top = LETTER_MAX * max(st.shape)
    out = []
    for c, (x, y, bw, bh, area) in enumerate(stats[1:], start=1):
        if not (LETTER_PX <= bh <= top and bw <= 8 * bh and 0.12 <= area / (bw * bh) <= 0.85):
            continue
        if bw <= 1.6 * bh:
            out.append((int(x), int(y), int(bw), int(bh)))
            continue
        profile = (parts[y:y + bh, x:x + bw] == c).sum(axis=0) > 0.15 * bh
        edges = np.flatnonzero(np.diff(np.concatenate([[0], profile.astype(np.int8), [0]])))
        runs = [(x0, x1) for x0, x1 in zip(edges[::2], edges[1::2]) if x1 - x0 >= 0.2 * bh]
        out.extend((int(x + x0), int(y), int(x1 - x0), int(bh)) for x0, x1 in runs)
    return out


def text_rows(boxes: list[tuple[int, int, int, int]]) -> list[list[tuple[int, int, int, int]]]:
    """Chains of letter boxes side by side: centres level within half a height, heights within 1.6x of each
    other, gaps under 1.5 heights; chains of at least TEXT_MIN_STROKES letters are text rows."""
    order = sorted(boxes)
    rows, used = [], set()
    for i, first in enumerate(order):
        if i in used:
            continue
        chain, last = [first], first
        for j in range(i + 1, len(order)):
            x, y, bw, bh = order[j]
            lx, ly, lw, lh = last
            if j in used or x - (lx + lw) > 1.5 * max(bh, lh):
                continue
            level = abs((y + bh / 2) - (ly + lh / 2)) <= 0.5 * max(bh, lh)
            if level and max(bh, lh) <= 1.6 * min(bh, lh) and x >= lx:
                chain.append(order[j])
                used.add(j)
                last = order[j]
        if len(chain) >= TEXT_MIN_STROKES:
            rows.append(chain)
    return rows


def ruler(rgb: np.ndarray, back: np.ndarray) -> np.ndarray:
    """A ruler: a background band along one edge of the frame (touching it, 3x longer than wide) holding
    RULER_TICKS or more thin elongated marks (ticks, digit strokes) inside it."""
    import cv2
    from scipy import ndimage as ndi

    gray = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (9, 9))
    thin = np.maximum(cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, k), cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, k))
    n, parts, stats, _ = cv2.connectedComponentsWithStats(back.astype(np.uint8), connectivity=8)
    h, w = back.shape
    out = np.zeros_like(back)
    for c in range(1, n):
        x, y, bw, bh = stats[c, :4]
        touches = x == 0 or y == 0 or x + bw == w or y + bh == h
        if not touches or max(bw, bh) < 3 * max(1, min(bw, bh)):
            continue
        band = ndi.binary_erosion(ndi.binary_fill_holes(ndi.binary_closing(parts == c, iterations=3)), iterations=3)
        m, _, tstats, _ = cv2.connectedComponentsWithStats(((thin > TICK_CONTRAST) & band).astype(np.uint8))
        ticks = [t for t in tstats[1:] if t[4] >= 3 and max(t[2], t[3]) >= 2 * min(t[2], t[3])]
        if len(ticks) >= RULER_TICKS:
            out |= band | (parts == c)
    return out


def beside(lesion: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Lesion parts (connected components) within 3 px of `region` that hold under MINOR_PART of the lesion."""
    import cv2

    n, parts, stats, _ = cv2.connectedComponentsWithStats(lesion.astype(np.uint8), connectivity=8)
    near = np.unique(parts[cv2.dilate(region.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0])
    total = max(1, int(lesion.sum()))
    drop = [c for c in near if c > 0 and stats[c, cv2.CC_STAT_AREA] < MINOR_PART * total]
    return np.isin(parts, drop)


def stroke_parts(rgb: np.ndarray, lesion: np.ndarray) -> np.ndarray:
    """Parts of the lesion (connected components, widened by 2 px) of which over STROKE_PART_SHARE are
    `strokes`: a watermark the text rows missed (letters merged into one blob) that the mask took. The
    mask is then refused rather than cut (white scale can look the same, and a cut lesion would stay in
    the healthy image)."""
    import cv2

    n, parts, stats, _ = cv2.connectedComponentsWithStats(lesion.astype(np.uint8), connectivity=8)
    st = strokes(rgb)
    out = np.zeros_like(lesion)
    for c in range(1, n):
        x, y, bw, bh = stats[c, :4]
        y0, x0 = max(0, y - 2), max(0, x - 2)
        part = parts[y0:y + bh + 2, x0:x + bw + 2] == c
        grown = cv2.dilate(part.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        if st[y0:y + bh + 2, x0:x + bw + 2][grown].mean() > STROKE_PART_SHARE:
            out[y0:y + bh + 2, x0:x + bw + 2] |= grown
    return out


def plausibility(lesion: np.ndarray, skin: np.ndarray, back: np.ndarray, text_px: np.ndarray) -> dict:
    """How lesion-like the outline is, each factor in [0, 1] (1: nothing wrong), with what it measured."""
    import cv2

    h, w = lesion.shape
    if not lesion.any():
        return {"ring_background": 0.0, "skin_share": 0.0, "text_share": 0.0, "plausibility": 0.0}
    r = max(2, round(RING * max(h, w)))
    ring = cv2.dilate(lesion.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2)) > 0
    ring &= ~lesion
    ring_bg = float(back[ring].mean()) if ring.any() else 1.0
    skin_share = float(lesion.sum() / max(1, (lesion | skin).sum()))
    grown = cv2.dilate(lesion.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    text_share = float(text_px[grown].mean())
    f = (_ramp(ring_bg, MAX_RING_BACKGROUND) * _ramp(skin_share, MAX_SKIN_SHARE, 0.75)
         * _ramp(text_share, MAX_TEXT_SHARE))
    return {"ring_background": round(ring_bg, 3), "skin_share": round(skin_share, 3),
            "text_share": round(text_share, 3), "plausibility": round(f, 3)}


def _ramp(value: float, limit: float, start: float | None = None) -> float:
    """1 up to `start` (default: half the limit), falling linearly to 0 at `limit`."""
    start = limit / 2 if start is None else start
    return float(np.clip((limit - value) / (limit - start), 0.0, 1.0))


def vet(rgb: np.ndarray, label_map: np.ndarray, confidence: float) -> Vetted:
    """Cut text and background out of the lesion, label rulers, and scale the confidence by `plausibility`."""
    import cv2

    lm = label_map.copy()
    back = background(rgb)
    text_px = text(rgb)
    rule = ruler(rgb, back)
    lesion = (lm == LABEL_LESION) & ~text_px & ~back & ~rule
    if (lesion != (lm == LABEL_LESION)).any():  # what a cut left along its edge: slivers, not lesion
        lesion = cv2.morphologyEx(lesion.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    if rule.any():  # a ruler's shadow or edge beside it: a minor lesion part touching the ruler goes
        lesion &= ~beside(lesion, rule)
    lm[(lm == LABEL_LESION) & ~lesion] = LABEL_SKIN
    lm[back & (lm != LABEL_MARKER)] = LABEL_BACKGROUND
    lm[text_px] = LABEL_BACKGROUND
    lm[rule] = LABEL_RULER
    stroky = stroke_parts(rgb, lm == LABEL_LESION)
    factors = plausibility(lm == LABEL_LESION, lm == LABEL_SKIN, back | rule, text_px | stroky)
    if stroky.any():  # a part of the outline is text-like: the outline is not a lesion's
        factors.update(text_part=True, plausibility=0.0)
    factors["text_px"] = round(float(text_px.mean()), 4)
    factors["ruler_px"] = round(float(rule.mean()), 4)
    return Vetted(lm, round(float(confidence) * factors["plausibility"], 4), factors)
