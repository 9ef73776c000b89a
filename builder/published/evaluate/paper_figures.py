"""The published cgDDI figures that `builder evaluate` sets its own beside (restated, with where each comes from).

The paper measured its full release (DDI's 656 photos; 309 healthy, 80,427 lesion-mapped and 185,400
semantic images) with Inception-v3 FID, KID and LPIPS; its supplementary sections S4 (imbalance), S6
(fidelity per skin tone) and S8 ("transformative use": FID of standard augmentations of the real photos).
Tones are Fitzpatrick I-II (light), III-IV (medium), V-VI (dark). `None` marks a figure the paper does not give.
"""
from __future__ import annotations

SOURCE = "cgDDI (MICCAI 2026), supplementary material"

# S4: images per tone and the imbalance ratio (largest tone count / smallest). "real" is DDI itself.
IMBALANCE = {
    "real": {"light": None, "medium": None, "dark": None, "ratio": 1.16, "where": "S4"},
    "healthy": {"light": 97, "medium": 114, "dark": 98, "ratio": 1.18, "where": "S4"},
    "lesion_mapped": {"light": 25726, "medium": 30392, "dark": 24309, "ratio": 1.25, "where": "S4"},
    "semantic": {"light": 61800, "medium": 61800, "dark": 61800, "ratio": 1.00, "where": "S4, S3.5 (counts)"},
}

# S6: per kind x tone against the real photos of that tone; "sd" is the population SD across the three tones
# (the paper gives it for FID only).
FIDELITY = {
    "healthy": {"fid": {"light": 94.02, "medium": 92.11, "dark": 121.33, "sd": 13.35},
                "kid": {"light": 0.012, "medium": 0.008, "dark": 0.010, "sd": None},
                "lpips": {"light": 0.703, "medium": 0.692, "dark": 0.700, "sd": None}},
    "lesion_mapped": {"fid": {"light": 72.75, "medium": 69.46, "dark": 96.99, "sd": 12.28},
                      "kid": {"light": 0.005, "medium": 0.003, "dark": 0.001, "sd": None},
                      "lpips": {"light": 0.703, "medium": 0.692, "dark": 0.698, "sd": None}},
    "semantic": {"fid": {"light": 134.67, "medium": 124.94, "dark": 131.95, "sd": 4.10},
                 "kid": {"light": 0.055, "medium": 0.069, "dark": 0.037, "sd": None},
                 "lpips": {"light": 0.738, "medium": 0.756, "dark": 0.743, "sd": None}},
}
FIDELITY_WHERE = "S6"

# S8: FID against the real DDI photos, for augmentations of those photos and for each synthetic kind (all tones).
TRANSFORMATIVE = {"duplication": 0.0, "colour": 3.8, "contrast": 7.3, "rotation": 17.3, "random_crop": 23.0,
                  "gaussian_noise": 32.1, "lesion_mapped": 79.7, "healthy": 102.5, "semantic": 130.5}
TRANSFORMATIVE_WHERE = "S8"


def as_dict() -> dict:
    """All of the above, as written into evaluation.json beside the measured figures."""
    return {"source": SOURCE, "imbalance": IMBALANCE, "fidelity": FIDELITY, "fidelity_where": FIDELITY_WHERE,
            "transformative": TRANSFORMATIVE, "transformative_where": TRANSFORMATIVE_WHERE}
