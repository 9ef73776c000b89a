"""The paper's "transformative use" baselines: standard augmentations of the real photos, made with
albumentations (each photo augmented once, seeded per photo), whose distance to the real photos is set
beside each synthetic kind's.

Parameters are stated here and written into evaluation.json and the card. The paper names the
augmentations but not their strengths; these are common, moderate settings.
"""
from __future__ import annotations

AUGMENTATIONS = {
    "duplication": "an exact copy of each photo",
    "colour": "HueSaturationValue(hue_shift_limit=10, sat_shift_limit=20, val_shift_limit=10)",
    "contrast": "RandomBrightnessContrast(brightness_limit=0, contrast_limit=0.3)",
    "rotation": "Rotate(limit=30, border_mode=BORDER_REFLECT_101)",
    "random_crop": "RandomResizedCrop(scale=(0.5, 0.9), ratio=(3/4, 4/3)) back to the photo's own size",
    "gaussian_noise": "GaussNoise(std_range=(0.1, 0.1)) (SD 10% of the 0-255 range)",
}


def _transform(name: str, height: int, width: int, seed: int):
    import albumentations as A
    import cv2

    ops = {
        "duplication": [],
        "colour": [A.HueSaturationValue(hue_shift_limit=10, sat_shift_limit=20, val_shift_limit=10, p=1.0)],
        "contrast": [A.RandomBrightnessContrast(brightness_limit=0, contrast_limit=0.3, p=1.0)],
        "rotation": [A.Rotate(limit=30, border_mode=cv2.BORDER_REFLECT_101, p=1.0)],
        "random_crop": [A.RandomResizedCrop(size=(height, width), scale=(0.5, 0.9), ratio=(3 / 4, 4 / 3), p=1.0)],
        "gaussian_noise": [A.GaussNoise(std_range=(0.1, 0.1), p=1.0)],
    }[name]
    return A.Compose(ops, seed=seed)


def augmented(items, name: str, seed: int) -> list:
    """`items` (real photos) with augmentation `name` applied, as new items (PNG bytes, same metadata)."""
    import dataclasses
    import io

    import numpy as np
    from PIL import Image

    from builder.core.store import encode_png

    out = []
    for n, item in enumerate(items):
        if name == "duplication":
            out.append(item)
            continue
        rgb = np.asarray(Image.open(io.BytesIO(item.data)).convert("RGB"))
        image = _transform(name, rgb.shape[0], rgb.shape[1], seed + n)(image=rgb)["image"]
        out.append(dataclasses.replace(item, sample_id=f"{item.sample_id}~{name}", blob=encode_png(image)))
    return out
