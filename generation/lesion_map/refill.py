"""The lesion-map fallbacks after pads: a bounded downscale, another base of the same split and tone, or
keeping the lesion where it lay in the donor (the original method's last resort).

`lesion_map.fallbacks` lists them in the order tried; every row records which one placed it (the
typed `placement` column) and, for another base, the base it planned (`params.planned_base_id`).
Bases are tried in a seeded order per row, so any worker count gives the same bytes.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from builder.core.config import LesionMapConfig
from builder.core.errors import ConfigError
from builder.core.schema import LABEL_LESION, Record
from generation.lesion_map.blend import donor_exclude
from generation.lesion_map.plan import source_of, split_key
from generation.lesion_map.placement import (DONOR_RESIZES, DonorCuts, Mapped, PlacementError, allowed_region, check_pair,
                                             draw_angle, keep, no_fit, place, search, skin_share)

FALLBACKS = ("downscale", "other_base", "keep_in_place")


def check_fallbacks(cfg: LesionMapConfig) -> None:
    """Settings errors name the bad value and the valid ones."""
    from generation.lesion_map.blend import BLENDS

    fb = list(cfg.fallbacks)
    if any(f not in FALLBACKS for f in fb) or len(set(fb)) != len(fb):
        raise ConfigError(f"lesion_map.fallbacks={fb!r}: expected distinct items of {list(FALLBACKS)}, in the "
                          "order to try them (v1.1, the method: [keep_in_place])")
    if "keep_in_place" in fb and fb[-1] != "keep_in_place":
        raise ConfigError(f"lesion_map.fallbacks={fb!r}: keep_in_place always places, so it must come last")
    scales = list(cfg.downscales)
    if any(not isinstance(s, (int, float)) or not 0.1 <= s < 1 for s in scales) or scales != sorted(scales, reverse=True):
        raise ConfigError(f"lesion_map.downscales={scales!r}: expected decreasing factors in [0.1, 1), "
                          "the lesion scales tried after full size (e.g. [0.8, 0.64, 0.5])")
    if "downscale" in fb and not scales:
        raise ConfigError("lesion_map.fallbacks has downscale but lesion_map.downscales is empty")
    if cfg.donor_resize not in DONOR_RESIZES:
        raise ConfigError(f"lesion_map.donor_resize={cfg.donor_resize!r}: expected one of {list(DONOR_RESIZES)} "
                          "(none: donor pixels as they are, the method)")
    for name in ("max_lesion_share", "max_base_lesion"):
        v = getattr(cfg, name)
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 < v <= 1):
            raise ConfigError(f"lesion_map.{name}={v!r}: expected null (no bound, the method) or a share of the "
                              "base's skin in (0, 1] (v1.2: 0.25 and 0.5)")
    if cfg.blend not in BLENDS:
        raise ConfigError(f"lesion_map.blend={cfg.blend!r}: expected one of {list(BLENDS)}")


def base_groups(bases: list[Record], split_of: dict[str, str] | None) -> dict[tuple, list[Record]]:
    """(skin tone, split) -> bases sorted by id: where another base for a row may come from."""
    key = split_key(split_of)
    groups: dict[tuple, list[Record]] = {}
    for r in sorted(bases, key=lambda r: r.sample_id):
        groups.setdefault((r.skin_tone, key(r)), []).append(r)
    return groups


@dataclasses.dataclass
class Pixels:
    """How the mapper reads a record's pixels (label maps alone while searching other bases)."""

    image: Callable[[str], np.ndarray]
    mask: Callable[[str], np.ndarray]


def map_with_fallbacks(base: Record, donor: Record, base_px: Pixels, donor_px: Pixels, cfg: LesionMapConfig,
                       seed: int, others: list[Record]) -> tuple[Mapped, Record]:
    """Map one plan row: the planned base (pads, then downscales), then `others`, then keep in place.

    With `lesion_map.max_lesion_share` a scale whose lesion covers more of a base's skin is skipped
    on that base; with `lesion_map.max_base_lesion` a base that was more lesion than that before healing
    (`healed_share`) gets no lesion (its rows go to `others`). Returns the mapped image and the base it
    went on. Raises PlacementError as `map_lesion` does, `base_mostly_lesion` and `lesion_too_large`.
    """
    fb = tuple(cfg.fallbacks)
    scales = (1.0,) + (tuple(float(s) for s in cfg.downscales) if "downscale" in fb else ())
    pads = tuple(int(p) for p in cfg.pads)
    base_rgb, base_map = base_px.image(base.sample_id), base_px.mask(base.sample_id)
    donor_rgb, donor_map = donor_px.image(donor.sample_id), donor_px.mask(donor.sample_id)
    check_pair(base_rgb, base_map, donor_rgb, donor_map)
    rng = np.random.default_rng(seed)
    cuts = DonorCuts(donor_rgb, donor_map, draw_angle(rng, cfg.rotate), cfg.dilate_px, float(cfg.feather),
                     cfg.donor_resize, donor_exclude(donor_rgb, donor_map, cfg.blend))
    cuts.get(base_map.shape, 1.0)  # a donor without a lesion fails here, before any search
    bound = cfg.max_lesion_share
    found = search(base_map, cuts, scales, pads, rng, bound) if base_usable(base_map, cfg) else None
    if found is not None:
        patch, pad, offset = found
        return place(base_rgb, base_map, patch, offset, pad, cuts.angle,
                     "fit" if patch.scale == 1 else "downscaled", cfg.blend), base
    if "other_base" in fb:
        order = np.random.default_rng([seed, 1]).permutation(len(others))
        for i in order:
            other = others[int(i)]
            other_map = base_px.mask(other.sample_id)
            found = search(other_map, cuts, scales, pads, rng, bound) if base_usable(other_map, cfg) else None
            if found is not None:
                patch, pad, offset = found
                kind = "other_base" if patch.scale == 1 else "other_base_downscaled"
                return place(base_px.image(other.sample_id), other_map, patch, offset, pad,
                             cuts.angle, kind, cfg.blend), other
    if not allowed_region(base_map).any():
        raise PlacementError("base_has_no_skin", "the base's label map has no skin, lesion or marker pixels")
    if "keep_in_place" in fb:
        return keep(base_rgb, base_map, cuts, cfg.blend), base
    raise unplaced(base, base_map, cuts, cfg, pads, scales)


def healed_share(base_map: np.ndarray) -> float:
    """The share of a base's skin | lesion | marker that was lesion before the healthy stage healed it."""
    return skin_share(base_map, int(np.count_nonzero(base_map == LABEL_LESION)))


def base_usable(base_map: np.ndarray, cfg: LesionMapConfig) -> bool:
    """False for a base that was mostly lesion (`lesion_map.max_base_lesion`): nearly all of it is a fill."""
    return cfg.max_base_lesion is None or healed_share(base_map) <= cfg.max_base_lesion


def unplaced(base: Record, base_map: np.ndarray, cuts: DonorCuts, cfg: LesionMapConfig, pads, scales) -> PlacementError:
    """Why nothing placed the row: the planned base refused, the lesion over the size bound, or no room."""
    if not base_usable(base_map, cfg):
        return PlacementError("base_mostly_lesion",
                              f"base {base.sample_id}: {healed_share(base_map):.0%} of its skin was lesion before "
                              f"healing (> lesion_map.max_base_lesion {cfg.max_base_lesion}), and no other base of "
                              "its tone and split took the lesion")
    smallest = cuts.get(base_map.shape, min(scales))
    share = skin_share(base_map, smallest.lesion)
    if cfg.max_lesion_share is not None and share > cfg.max_lesion_share:
        return PlacementError("lesion_too_large",
                              f"the lesion at scale {min(scales)} would cover {share:.0%} of the base's skin "
                              f"(> lesion_map.max_lesion_share {cfg.max_lesion_share}), and no other base of its "
                              "tone and split has room for it")
    return no_fit(cuts.get(base_map.shape, 1.0), pads, scales)


def other_bases(groups: dict[tuple, list[Record]], base: Record, donor: Record, split: str | None) -> list[Record]:
    """Bases of the planned base's tone, split and source (several sources: the row keeps its planned
    direction), without it and without any sharing the donor's photo."""
    donor_src, source = set(donor.source_ids), source_of(base)
    return [r for r in groups.get((base.skin_tone, split), [])
            if r.sample_id != base.sample_id and not donor_src.intersection(r.source_ids) and source_of(r) == source]
