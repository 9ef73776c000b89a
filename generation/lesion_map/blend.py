"""How a placed lesion enters the base skin: `alpha` (the method's feathered composite), `poisson` or `poisson_screen`.

`poisson` is gradient-domain cloning in log-RGB: the donor patch keeps its own gradients (the
lesion's texture and its contrast to the donor's skin) and is multiplied by a smooth field equal to
base / donor on the footprint's outer boundary, so the donor skin carried around the lesion takes
the base's colour instead of leaving a ring (the halo). The field is the harmonic membrane of the
boundary ratios (the exact solution of the Poisson equation with the donor's guidance field),
solved with SuperLU on the footprint's pixels; the boundary ratios are read from lightly smoothed
images so the membrane matches local skin colour, not pixel noise. Large footprints are solved on
a grid coarsened by an integer factor (the membrane is smooth) and upsampled.

`poisson_screen` treats the pixels darker than the donor's own skin (pigment, blood: they absorb)
exactly as `poisson`, by the ratio base skin / donor skin, and the pixels brighter than it (scale,
keratin, ulcer base: they scatter) by the ratio of their distance to white, 255 - value: a white
crust stays white instead of being multiplied past 255 and clipped to flat white, which is what
`poisson` does to a bright lesion taken from dark skin onto light skin. The two rules agree at the
donor's skin colour, so nothing changes where the donor skin itself is (the halo ring). The skin
colours are the same membranes, solved for base and donor separately (one LU, six columns).

Hand-written rather than cv2.seamlessClone: OpenCV 5.0's seamlessClone returned different bytes on
repeated identical calls here (differences up to 182 grey levels), and a dataset build must be
deterministic. The feathered alpha is applied on top, so exactly the same pixels can change as with
`alpha` (nothing outside the footprint moves).
"""
from __future__ import annotations


import numpy as np

from generation.membrane import membrane

GRADIENT_BLENDS = ("poisson", "poisson_screen", "lesion_lab")  # pinned to the base one pixel outside the window
BLENDS = ("alpha", *GRADIENT_BLENDS)
SMOOTH_SIGMA = 2.0      # px: boundary colours are local skin means, not single noisy pixels
DRAPE_A = -15.0         # lesion_lab: donor lesion pixels greener than this a* are a drape (a blue naevus is about -5)


def blend_window(base: np.ndarray, donor: np.ndarray, alpha: np.ndarray, method: str,
                 context: np.ndarray | None = None, donor_skin: tuple | None = None) -> np.ndarray:
    """uint8 window: base + alpha * (donor' - base), donor' = donor (alpha) or the cloned donor (poisson).

    `base`, `donor` are (h, w, 3) float64 with integer values; `alpha` (h, w) in [0, 1];
    `context` is the base window grown by one pixel on every side where the image allows
    (it holds the boundary the membrane is pinned to), as (pixels, (top, left) margin);
    `donor_skin` the donor's skin colour around the lesion (CIE Lab; `lesion_lab`).
    """
    if method == "lesion_lab":
        donor = lab_clone(base if context is None else context, donor, alpha > 0, donor_skin)
    elif method in GRADIENT_BLENDS:
        donor = poisson_clone(base if context is None else context, donor, alpha > 0,
                              screen=method == "poisson_screen")
    elif method != "alpha":
        raise ValueError(f"blend={method!r}: expected one of {BLENDS}")
    # base + a * (donor - base): exactly the base where alpha is 0; with dyadic alpha and integer
    # donor pixels every step is exact in float64 (alpha: bit-identical on any machine).
    out = np.subtract(donor, base)
    out *= alpha[..., None]
    out += base
    return np.clip(np.rint(out, out=out), 0, 255, out=out)


def poisson_clone(context, donor: np.ndarray, support: np.ndarray, screen: bool = False) -> np.ndarray:
    """The donor window times exp(membrane): base colour on the support's outer boundary, donor gradients inside.

    `screen`: pixels brighter than the donor's skin keep their distance to white in proportion instead
    (see the module docstring)."""
    import cv2

    if isinstance(context, tuple):
        ctx, (top, left) = context
    else:
        ctx, top, left = context, 0, 0
    h, w = support.shape
    # log(1 + v): the membrane multiplies, so a lesion keeps its contrast to the skin around it.
    log_base = np.log1p(cv2.GaussianBlur(ctx.astype(np.float64), (0, 0), SMOOTH_SIGMA))
    donor_s = np.log1p(cv2.GaussianBlur(donor, (0, 0), SMOOTH_SIGMA, borderType=cv2.BORDER_REFLECT))
    # The donor's smoothed colour, extended one pixel past the window by replication.
    donor_ctx = np.empty(ctx.shape[:2] + (3,), np.float64)
    donor_ctx[...] = np.nan
    donor_ctx[top:top + h, left:left + w] = donor_s
    donor_ctx = _fill_edges(donor_ctx, top, left, h, w)
    inside = np.zeros(ctx.shape[:2], bool)
    inside[top:top + h, left:left + w] = support
    if not screen:
        field = membrane(inside, log_base - donor_ctx)[top:top + h, left:left + w]
        return np.expm1(np.log1p(donor) + field)
    both = membrane(inside, np.concatenate([log_base, donor_ctx], axis=2))[top:top + h, left:left + w]
    skin_base, skin_donor = np.expm1(both[..., :3]), np.expm1(both[..., 3:])
    darker = np.expm1(np.log1p(donor) + both[..., :3] - both[..., 3:])
    lighter = 255.0 - (255.0 - donor) * (255.0 - skin_base) / np.maximum(255.0 - skin_donor, 1.0)
    return np.where(donor <= skin_donor, darker, lighter)


def donor_exclude(rgb: np.ndarray, label_map: np.ndarray, method: str) -> np.ndarray | None:
    """`lesion_lab`: the donor's lesion-labelled pixels with a colour no skin or lesion has that the mask
    took in; they never enter a base: strongly green (a drape or gown, a* < DRAPE_A), a near-black grey
    void, and a backdrop's blues and greens (`builder.core.colour.drape` colours whose connected region
    continues outside the lesion at least as far as inside it: a blue sheet the outline ran into). A blue
    inside the lesion, surrounded by skin, is kept (a blue naevus, a melanoma's blue-white veil). None for
    the other blends (the method pastes every lesion-labelled pixel)."""
    if method != "lesion_lab":
        return None
    import cv2

    from builder.core.colour import drape, rgb_to_lab
    from builder.core.schema import LABEL_LESION

    lesion = label_map == LABEL_LESION
    lab = rgb_to_lab(rgb)  # once for the whole donor: the rules below read its lesion and its backdrop
    out = lesion & ((lab[..., 1] < DRAPE_A) | ((lab[..., 0] < 12) & (np.hypot(lab[..., 1], lab[..., 2]) < 10)))
    blue = drape(lab)
    if (blue & lesion).any():
        n, parts = cv2.connectedComponents(blue.astype(np.uint8), connectivity=8)
        inside = np.bincount(parts[blue & lesion], minlength=n)
        outside = np.bincount(parts[blue & ~lesion], minlength=n)
        backdrop = np.flatnonzero((outside >= inside) & (inside > 0))
        out |= lesion & np.isin(parts, backdrop[backdrop > 0])
    return out


def lab_clone(context, donor: np.ndarray, support: np.ndarray, donor_skin: tuple | None = None) -> np.ndarray:
    """`lesion_lab`: the donor window re-coloured per pixel in CIE L*a*b*, from donor skin to base skin.

    The base's skin colour is the harmonic membrane of its smoothed colours on the support's outer
    boundary (as `poisson_screen`), in Lab; the donor's is `donor_skin`, measured on its skin around the
    lesion (the support's boundary often lies on the lesion's own rim, which would make a dark rim the
    "skin"), or the membrane of its boundary when the donor has no skin label there. Lightness: a pixel darker than the donor's
    skin is scaled by base skin L* / donor skin L* (it absorbs), a lighter one keeps its distance to
    L* 100 in proportion (it scatters). Colour: a darker pixel keeps its a*, b* offset from its skin
    (a* + base skin a* - donor skin a*, the same for b*); a lighter one takes that move in proportion to
    its distance to white (the same ratio), so white scale stays white. One rule per pixel, never per channel: a dark
    crust cannot turn cyan or black at a rim where R fell below the skin and B did not, and a lesion
    keeps its hue (yellow stays yellow, brown stays brown). Equal to the base's skin colour where the
    donor pixel has the donor's skin colour, so nothing changes at the footprint's edge."""
    import cv2

    from builder.core.colour import lab_to_rgb, rgb_to_lab

    if isinstance(context, tuple):
        ctx, (top, left) = context
    else:
        ctx, top, left = context, 0, 0
    h, w = support.shape
    base_s = cv2.GaussianBlur(ctx.astype(np.float64), (0, 0), SMOOTH_SIGMA)
    donor_s = cv2.GaussianBlur(donor, (0, 0), SMOOTH_SIGMA, borderType=cv2.BORDER_REFLECT)
    donor_ctx = np.full(ctx.shape[:2] + (3,), np.nan)
    donor_ctx[top:top + h, left:left + w] = donor_s
    donor_ctx = _fill_edges(donor_ctx, top, left, h, w)
    inside = np.zeros(ctx.shape[:2], bool)
    inside[top:top + h, left:left + w] = support
    both = membrane(inside, np.concatenate([rgb_to_lab(base_s), rgb_to_lab(donor_ctx)], axis=2))
    both = both[top:top + h, left:left + w]
    skin_b, skin_d, pix = both[..., :3], both[..., 3:], rgb_to_lab(donor)
    if donor_skin is not None:
        skin_d = np.broadcast_to(np.asarray(donor_skin, np.float64), skin_b.shape)
    out = np.empty_like(pix)
    ld, lb, lp = skin_d[..., 0], skin_b[..., 0], pix[..., 0]
    out[..., 0] = np.where(lp <= ld, lp * lb / np.maximum(ld, 1.0),
                           100.0 - (100.0 - lp) * (100.0 - lb) / np.maximum(100.0 - ld, 1.0))
    # A pixel lighter than its skin scatters (scale, crust): its colour is its own, so it takes the skin's
    # move in a*b* less the nearer it is to white (white scale stays white, not tinted by the new skin).
    carry = np.where(lp <= ld, 1.0, np.clip((100.0 - lp) / np.maximum(100.0 - ld, 1.0), 0.0, 1.0))
    out[..., 1:] = pix[..., 1:] + (skin_b[..., 1:] - skin_d[..., 1:]) * carry[..., None]
    return np.where(support[..., None], lab_to_rgb(out), donor)


def _fill_edges(arr: np.ndarray, top: int, left: int, h: int, w: int) -> np.ndarray:
    """Copy the window's edge rows and columns into the (at most one pixel) margin around it."""
    out = arr.copy()
    out[:top, left:left + w] = out[top:top + 1, left:left + w]
    out[top + h:, left:left + w] = out[top + h - 1:top + h, left:left + w]
    out[:, :left] = out[:, left:left + 1]
    out[:, left + w:] = out[:, left + w - 1:left + w]
    return out
