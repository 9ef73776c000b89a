"""The card's Usage section: code blocks that run as written on the version they describe.

Every block is emitted only where it works on this version's rows (a `healthy` config only when there are
healthy rows, the mask example only when rows carry masks, stratification by the first column it
succeeds with); tests/cards/test_card_blocks.py runs every block of the card against a Hub push.
"""
from __future__ import annotations

import math
from collections import Counter

from builder.core.schema import MASK_LABELS, MASKED_KINDS
from cards.text import CardFacts

STRATIFY_TEST_SIZE = 0.1
# Columns a train split could be stratified by, in order of preference (all ClassLabels).
STRATIFY_COLUMNS = ("disease", "malignant", "skin_tone")


def stratify_column(records, test_size: float = STRATIFY_TEST_SIZE) -> str | None:
    """The first of STRATIFY_COLUMNS by which `train_test_split(test_size, stratify_by_column=...)` of the
    train rows succeeds, by `datasets`' own conditions (every class at least twice, at least as many rows
    on each side as classes; the test side `ceil(test_size * n)`); None when none does."""
    train = [r for r in records if r.split == "train"]
    n_test = math.ceil(test_size * len(train))
    for column in STRATIFY_COLUMNS:
        counts = Counter(getattr(r, column) for r in train)
        if counts and min(counts.values()) >= 2 and min(n_test, len(train) - n_test) >= len(counts):
            return column
    return None


def usage(f: CardFacts) -> str:
    repo, version = f.repo, f.cfg.version
    healthy = (f'\nhealthy = load_dataset("{repo}", "healthy", revision="v{version}")'
               if "healthy" in f.kinds else "")
    return f"""## Usage

```python
from datasets import load_dataset

ds = load_dataset("{repo}", revision="v{version}")              # all kinds{healthy}
stream = load_dataset("{repo}", revision="v{version}", split="train", streaming=True)
```

Always pin `revision="v{version}"`: tags are immutable, `main` moves with new versions.

Fixed-size tensors for training (images come in several sizes): resize in a transform, then a
plain PyTorch `DataLoader` batches them; `has_lesion` filters the healthy rows out of a classifier's data.

```python
{TRAIN_SNIPPET}
```

{_stratify(f)}{_masks(f)}

For PatchAlign24 or FairDisCo, export CSVs in their own encodings:
`python -m builder export patchalign --version {version} --out DIR [--real DDI_DIR]` (or `fairdisco`)."""


def _stratify(f: CardFacts) -> str:
    column = stratify_column(f.records)
    if column is None:
        return (f"A stratified split of this version's train rows does not work by {', '.join(STRATIFY_COLUMNS)} "
                "(too few rows per class); a plain one does:\n\n```python\n"
                f'parts = ds["train"].train_test_split(test_size={STRATIFY_TEST_SIZE}, seed=0)\n```')
    why = "" if column == "disease" else (
        "Stratifying by `disease` fails on this version (some disease has fewer than two train rows, or "
        "there are more diseases than a 10% split has rows); ")
    return (f"{why}`{column}` is a ClassLabel, so a stratified split works:\n\n```python\n"
            f'parts = ds["train"].train_test_split(test_size={STRATIFY_TEST_SIZE}, stratify_by_column="{column}", '
            'seed=0)\n```')


def _masks(f: CardFacts) -> str:
    if not set(MASKED_KINDS) & {r.kind for r in f.records if r.split == "train"}:
        return ""
    labels = ", ".join(f"{i} {name}" for i, name in enumerate(MASK_LABELS))
    return f"""

Segmentation: `mask` is a single-channel image of the row's size ({labels}); healthy and lesion-mapped
rows have one, real and semantic rows `None`.

```python
{MASK_SNIPPET}
```"""


MASK_SNIPPET = """import numpy as np

masked = ds["train"].filter(lambda kind: ds["train"].features["kind"].int2str(kind) in ("healthy", "lesion_mapped"),
                            input_columns="kind")
labels = np.asarray(masked[0]["mask"])   # (height, width) uint8, the image's size"""

# Runs as written in tests/build/test_loading.py (with `ds` loaded from a local build).
TRAIN_SNIPPET = """import numpy as np
import torch

def to_tensors(batch, size=224):
    pixels = [np.asarray(im.convert("RGB").resize((size, size))) for im in batch["image"]]
    return {"pixel_values": torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float() / 255,
            "malignant": torch.tensor(batch["malignant"]), "skin_tone": torch.tensor(batch["skin_tone"])}

lesions = ds["train"].filter(lambda has: has, input_columns="has_lesion")
loader = torch.utils.data.DataLoader(lesions.with_transform(to_tensors), batch_size=16, shuffle=True)
batch = next(iter(loader))   # pixel_values: (16, 3, 224, 224) float, malignant: (16,)"""
