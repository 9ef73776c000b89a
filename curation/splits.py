"""Train/validation/test splits over real source images: stratified by tone x malignancy, seeded."""
from __future__ import annotations

import hashlib
from collections import defaultdict

from builder.config import CurationConfig
from builder.errors import ConfigError
from builder.schema import SPLITS, Record


def check_ratios(ratios: dict) -> dict[str, float]:
    if set(ratios) != set(SPLITS) or any(v < 0 for v in ratios.values()) or abs(sum(ratios.values()) - 1) > 1e-6:
        raise ConfigError(f"curation.ratios={ratios!r}: need non-negative train/validation/test summing to 1")
    return {k: float(ratios[k]) for k in SPLITS}


def assign_splits(real: list[Record], cfg: CurationConfig) -> dict[str, str]:
    """source_id -> split. Each stratum (tone, malignant) is ordered by a seeded hash of the id and cut
    by largest-remainder counts, so the result depends only on the ids, the seed and the ratios."""
    ratios = check_ratios(dict(cfg.ratios))
    strata: dict[tuple, list[str]] = defaultdict(list)
    for r in real:
        strata[(r.skin_tone, bool(r.malignant))].extend(r.source_ids)
    out: dict[str, str] = {}
    for key in sorted(strata):
        ids = sorted(set(strata[key]), key=lambda s: _rank(cfg.split_seed, s))
        counts = _counts(len(ids), ratios)
        start = 0
        for split in ("test", "validation", "train"):
            for sid in ids[start:start + counts[split]]:
                out[sid] = split
            start += counts[split]
    return out


def _rank(seed: int, source_id: str) -> str:
    return hashlib.blake2b(f"{seed}:{source_id}".encode(), digest_size=8).hexdigest()


def _counts(n: int, ratios: dict[str, float]) -> dict[str, int]:
    """Largest-remainder apportionment of n items; ties broken in SPLITS order."""
    exact = {k: n * v for k, v in ratios.items()}
    counts = {k: int(v) for k, v in exact.items()}
    left = n - sum(counts.values())
    for k in sorted(SPLITS, key=lambda k: (-(exact[k] - counts[k]), SPLITS.index(k)))[:left]:
        counts[k] += 1
    return counts
