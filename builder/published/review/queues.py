"""What a reviewer sees: the build's items by queue, each with its views and automatic flags.

Every image comes from the build's work folder stores (`<work>/real`, `<work>/healthy`,
`<work>/lesion_mapped`, `<work>/semantic`, and `<work>/auto_masks` for automatic masks), through an
item found in a queue: a request names a queue, an id and a view, all checked against the queues
before any path is made, so no request can reach another file.
"""
from __future__ import annotations

import dataclasses
import io
import random
from pathlib import Path

import numpy as np

from builder.core.errors import ReviewError
from builder.core.progress import progress
from builder.core.schema import LABEL_LESION, LABEL_MARKER, LABEL_SKIN, Record
from builder.core.store import StageStore, encode_png
from builder.published.review import flags as F

QUEUES = ("healthy", "masks", "lesion_map", "semantic")
VIEWS = {"healthy": ("photo", "overlay", "image"), "masks": ("photo", "overlay"),
         "lesion_map": ("base", "image", "overlay"), "semantic": ("image",)}
SAMPLED = ("lesion_map", "semantic")  # the large queues: a seeded sample unless all are asked for


@dataclasses.dataclass
class Item:
    id: str
    queue: str
    tone: str
    disease: str
    info: dict
    flags: list = dataclasses.field(default_factory=list)  # F.Flag
    record: Record | None = dataclasses.field(default=None, repr=False)

    def to_json(self) -> dict:
        return {"id": self.id, "queue": self.queue, "tone": self.tone, "disease": self.disease,
                "views": list(VIEWS[self.queue]), "info": self.info,
                "flags": [f.name for f in self.flags if f.fired], "measures": [f.to_json() for f in self.flags]}


class Queues:
    """The items of one build's work folder, by queue, and the pixels of their views."""

    def __init__(self, work: Path, *, sample: int = 50, seed: int = 0, all_items: bool = False,
                 with_flags: bool = True):
        self.work = Path(work)
        if not (self.work / "real").is_dir():
            raise ReviewError(f"{self.work} holds no build (no real/ store): build the version first "
                              "(`python -m builder build --version V --build-out DIR`)")
        self.stores = {k: StageStore(self.work / d) for k, d in
                       (("real", "real"), ("healthy", "healthy"), ("lesion_map", "lesion_mapped"),
                        ("semantic", "semantic"))}
        self.real = {r.sample_id: r for r in self.stores["real"].records()}
        self.real_by_source = {s: r for r in self.real.values() for s in r.source_ids}
        self.auto = _auto_index(self.work / "auto_masks")
        self.items: dict[str, dict[str, Item]] = {q: {} for q in QUEUES}
        for q in QUEUES:
            for item in getattr(self, f"_{q}_items")():
                self.items[q][item.id] = item
        for q in SAMPLED:
            if not all_items and len(self.items[q]) > sample:
                keep = set(random.Random(seed).sample(sorted(self.items[q]), sample))
                self.items[q] = {i: it for i, it in self.items[q].items() if i in keep}
        if with_flags:
            self._flag_all()

    # -- queues ----------------------------------------------------------------------
    def _healthy_items(self):
        for r in self.stores["healthy"].records():
            parent = self.real.get(r.parent_id)
            if parent is not None:
                yield Item(r.sample_id, "healthy", r.skin_tone, parent.disease,
                           {"parent": parent.sample_id, "source_ids": r.source_ids}, record=r)

    def _masks_items(self):
        for sid, e in sorted(self.auto.items()):
            real = self.real_by_source.get(sid)
            if real is not None and (e.get("accepted") or e.get("reason") == "mask_discarded_in_review"):
                yield Item(sid, "masks", real.skin_tone, real.disease,
                           {"confidence": e.get("confidence"), "method": e.get("method"),
                            "real": real.sample_id}, record=real)

    def _lesion_map_items(self):
        for r in self.stores["lesion_map"].records():
            yield Item(r.sample_id, "lesion_map", r.skin_tone, r.disease,
                       {"base": r.base_id, "donor": r.donor_id, "placement": r.placement}, record=r)

    def _semantic_items(self):
        for r in self.stores["semantic"].records():
            yield Item(r.sample_id, "semantic", r.skin_tone, r.disease, {"prompt": r.prompt}, record=r)

    # -- lookups ---------------------------------------------------------------------
    def item(self, queue: str, item_id: str) -> Item:
        """The queue's item, or a ReviewError: the one gate between a request and a file."""
        if queue not in self.items or item_id not in self.items[queue]:
            raise ReviewError(f"no item {item_id!r} in review queue {queue!r}")
        return self.items[queue][item_id]

    def find(self, item_id: str) -> Item:
        for q in QUEUES:
            if item_id in self.items[q]:
                return self.items[q][item_id]
        raise ReviewError(f"no item {item_id!r} in any review queue")

    def to_json(self) -> dict:
        return {q: [it.to_json() for it in sorted(self.items[q].values(), key=lambda i: i.id)] for q in QUEUES}

    # -- pixels ----------------------------------------------------------------------
    def arrays(self, item: Item) -> dict:
        """The item's images and label maps as arrays (read from the stores only)."""
        r = item.record
        if item.queue == "healthy":
            real = self.stores["real"]
            return {"photo": real.read_image(r.parent_id), "labels": real.read_mask(r.parent_id),
                    "image": self.stores["healthy"].read_image(r.sample_id)}
        if item.queue == "masks":
            photo = self.stores["real"].read_image(r.sample_id)
            return {"photo": photo, "labels": _auto_labels(self.work / "auto_masks", self.auto[item.id], photo)}
        if item.queue == "lesion_map":
            healthy, mapped = self.stores["healthy"], self.stores["lesion_map"]
            return {"base": healthy.read_image(r.base_id), "base_labels": healthy.read_mask(r.base_id),
                    "image": mapped.read_image(r.sample_id), "labels": mapped.read_mask(r.sample_id)}
        return {"image": self.stores["semantic"].read_image(r.sample_id)}

    def view_png(self, queue: str, item_id: str, view: str) -> bytes:
        item = self.item(queue, item_id)
        if view not in VIEWS[queue]:
            raise ReviewError(f"view {view!r} is not one of {VIEWS[queue]} for queue {queue!r}")
        a = self.arrays(item)
        if view == "overlay":
            under = a["photo"] if queue in ("healthy", "masks") else a["image"]
            return encode_png(overlay(under, a["labels"]), compress_level=1)
        return encode_png(a[view], compress_level=1)

    def _flag_all(self) -> None:
        todo = [it for q in ("healthy", "masks", "lesion_map") for it in self.items[q].values()]
        for it in progress(todo, desc="review flags"):
            it.flags = item_flags(it, self.arrays(it))


def item_flags(item: Item, a: dict) -> list:
    if item.queue == "healthy":
        labels = a["labels"]
        region = F.dilate(np.isin(labels, (LABEL_LESION, LABEL_MARKER)), 3)
        return F.healthy_flags(a["image"], region, (labels == LABEL_SKIN) & ~region, photo=a["photo"])
    if item.queue == "masks":
        return F.mask_flags(a["photo"], a["labels"]) if a["labels"] is not None else []
    if item.queue == "lesion_map":
        return F.lesion_map_flags(a["base"], a["base_labels"], a["labels"])
    return []


def overlay(rgb: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """Lesion pixels tinted red and outlined in yellow, marker pixels tinted blue, the rest as is."""
    out = rgb.astype(np.float32).copy()
    if labels is None:
        return rgb
    lesion, marker = labels == LABEL_LESION, labels == LABEL_MARKER
    out[lesion] = 0.55 * out[lesion] + 0.45 * np.array([255, 0, 0])
    out[marker] = 0.55 * out[marker] + 0.45 * np.array([0, 80, 255])
    edge = F.dilate(lesion, 1) & ~lesion
    out[edge] = (255, 230, 0)
    return out.clip(0, 255).astype(np.uint8)


def _auto_index(folder: Path) -> dict[str, dict]:
    from curation.source.masks import read_auto_index

    return read_auto_index(folder) if folder.is_dir() else {}


def _auto_labels(folder: Path, entry: dict, photo: np.ndarray) -> np.ndarray | None:
    """The automatic mask's label map at the photo's size (its file name checked to be a plain name)."""
    from curation.source.masks import read_sddi_mask

    name = entry.get("file")
    if not name or Path(name).name != name or name.startswith("."):
        return None
    path = folder / name
    return read_sddi_mask(path, *photo.shape[:2]) if path.is_file() else None


def flags_csv(queues: Queues) -> str:
    """Every measured flag as CSV: id,queue,flag,value,threshold,fired (fired first, then by value)."""
    import csv

    rows = [(it.id, it.queue, f.name, f"{f.value:.4f}", f.threshold, int(f.fired))
            for q in QUEUES for it in queues.items[q].values() for f in it.flags]
    rows.sort(key=lambda r: (-r[5], r[1], r[2], -float(r[3]), r[0]))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(("id", "queue", "flag", "value", "threshold", "fired"))
    w.writerows(rows)
    return buf.getvalue()
