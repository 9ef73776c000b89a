"""Measures of synthetic quality the benchmarks and tests share: the lesion-map halo and healthy-fill fidelity."""
from __future__ import annotations

import numpy as np

RING_PX = 3  # ring width on each side of the pasted footprint's edge


def placed_masks(shape: tuple[int, int], lesion: np.ndarray, support: np.ndarray,
                 offset: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Full-image bool masks of a patch's lesion and support placed at `offset` (clipped to the image)."""
    out = []
    y, x = offset
    for m in (lesion, support):
        full = np.zeros(shape, bool)
        h, w = min(m.shape[0], shape[0] - y), min(m.shape[1], shape[1] - x)
        full[y:y + h, x:x + w] = m[:h, :w]
        out.append(full)
    return out[0], out[1]


def halo_delta_e(rgb: np.ndarray, lesion: np.ndarray, support: np.ndarray, skin: np.ndarray) -> float | None:
    """CIEDE2000 between the mean Lab colour of a thin ring just inside the pasted lesion's edge and of the
    base skin just outside the pasted footprint (None when either ring is empty).

    A donor-skin halo (a ring of the donor's skin carried in with a loose lesion mask) shows as a
    large difference; a lesion that enters the base skin without one as a small one.
    """
    import cv2
    from skimage.color import deltaE_ciede2000, rgb2lab

    k = np.ones((3, 3), np.uint8)
    les = lesion.astype(np.uint8)
    inner = lesion & ~cv2.erode(les, k, iterations=RING_PX, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    outer = cv2.dilate(support.astype(np.uint8), k, iterations=RING_PX).astype(bool) & ~support & skin
    if not inner.any() or not outer.any():
        return None
    lab = [rgb2lab(rgb[m].reshape(1, -1, 3).astype(np.float64) / 255.0).reshape(-1, 3).mean(axis=0)
           for m in (inner, outer)]
    return float(deltaE_ciede2000(lab[0], lab[1]))


def fill_fidelity(filled: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """PSNR and SSIM of the filled region against the hidden truth, and the texture ratio: high-frequency
    energy (Laplacian-of-Gaussian variance) of the fill over that of the truth, inside the mask."""
    import cv2
    from skimage.metrics import structural_similarity

    m = mask.astype(bool)
    err = (filled[m].astype(np.float64) - truth[m].astype(np.float64)) ** 2
    psnr = float(10 * np.log10(255.0 ** 2 / max(err.mean(), 1e-12)))
    y0, x0, h, w = _bbox(m)
    crop = np.s_[y0:y0 + h, x0:x0 + w]
    _, ssim_map = structural_similarity(truth[crop], filled[crop], channel_axis=2, data_range=255, full=True,
                                        win_size=7 if min(h, w) >= 7 else (min(h, w) // 2) * 2 + 1)
    ssim = float(ssim_map.mean(axis=2)[m[crop]].mean())

    def hf(img: np.ndarray) -> float:
        grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64)
        return float(cv2.Laplacian(cv2.GaussianBlur(grey, (0, 0), 0.8), cv2.CV_64F)[m].var())

    return {"psnr": psnr, "ssim": ssim, "texture_ratio": hf(filled) / max(hf(truth), 1e-12)}


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(ys.min()), int(xs.min()), int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)


def lesion_footprint(rec, bases, donors) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lesion, support, base skin) masks of a lesion-mapped record, rebuilt from its recorded params."""
    from generation.lesion_map.blend import donor_exclude
    from generation.lesion_map.placement import DonorCuts, allowed_region

    p = rec.params
    base_map = bases.read_mask(rec.base_id)
    rgb, lm = donors.read_image(rec.donor_id), donors.read_mask(rec.donor_id)
    patch = DonorCuts(rgb, lm, p["angle"], p["dilate"], p["feather"], p["donor_resize"],
                      donor_exclude(rgb, lm, p["blend"])).get(base_map.shape, p["lesion_scale"])
    lesion, support = placed_masks(base_map.shape, patch.lesion, patch.support, tuple(p["offset"]))
    return lesion, support, allowed_region(base_map).astype(bool)


def lesion_colour_error(donor_rgb: np.ndarray, donor_map: np.ndarray, out_rgb: np.ndarray, lesion: np.ndarray,
                        skin: np.ndarray) -> tuple[float, float] | None:
    """How far a pasted lesion's colour moved relative to its skin: (CIEDE2000 between the donor lesion's
    mean Lab and the pasted lesion's mean Lab minus the skin's move, base skin - donor skin; the change
    in degrees of the hue angle of lesion - skin in a*b*, 0 when the donor lesion is nearly grey
    against its skin). Means over the lesion eroded by 2 px and a skin ring 6 px wide; None when either
    is under 30 px."""
    import cv2
    from skimage.color import deltaE_ciede2000

    from builder.core.colour import rgb_to_lab
    from builder.core.schema import LABEL_LESION, LABEL_SKIN

    def parts(les: np.ndarray, sk: np.ndarray):
        core = cv2.erode(les.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2) > 0
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (13, 13))
        ring = (cv2.dilate(les.astype(np.uint8), k) > 0) & ~les & sk
        return (core, ring) if core.sum() >= 30 and ring.sum() >= 30 else None

    before, after = parts(donor_map == LABEL_LESION, donor_map == LABEL_SKIN), parts(lesion, skin & ~lesion)
    if before is None or after is None:
        return None
    (ld, sd), (lr, sr) = ([rgb_to_lab(img[m].astype(np.float64)).mean(axis=0) for m in pair]
                          for img, pair in ((donor_rgb, before), (out_rgb, after)))
    rel = float(deltaE_ciede2000(ld, lr - (sr - sd)))
    hd, hr = (np.degrees(np.arctan2(v[2], v[1])) for v in (ld - sd, lr - sr))
    hue = float(abs((hr - hd + 180) % 360 - 180)) if np.hypot(*(ld - sd)[1:]) > 5 else 0.0
    return rel, hue
