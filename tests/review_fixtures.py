"""A small build work folder for review tests: real, healthy and lesion-mapped stores and automatic masks,
written directly (tiny images, no build), and a running review server over it."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from builder.core.schema import Record
from builder.core.store import StageStore, encode_png

TONES = ("light", "medium", "dark")


def _record(kind: str, i: int, **extra) -> Record:
    base = {"sample_id": f"{kind}-{i:016x}", "kind": kind, "skin_tone": TONES[i % 3], "malignant": False,
            "disease": "melanoma" if i % 2 else "psoriasis", "source_ids": [f"demo:{i:06d}"],
            "image_path": f"images/{kind}-{i:016x}.png"}
    return Record.from_json({**base, **extra})


def _photo(seed: int, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rgb = np.full((size, size, 3), (200, 150, 120), np.uint8) + rng.integers(0, 10, (size, size, 3), dtype=np.uint8)
    labels = np.full((size, size), 4, np.uint8)
    labels[18:30, 18:30] = 1
    rgb[18:30, 18:30] = (110, 50, 40)
    return rgb, labels


def make_work(work: Path, n: int = 4) -> dict[str, list[str]]:
    """`n` real photos with masks, a healthy image of each, two lesion maps and `n` automatic masks."""
    real, healthy, mapped = (StageStore(work / d) for d in ("real", "healthy", "lesion_mapped"))
    ids = {"real": [], "healthy": [], "lesion_map": [], "masks": []}
    recs = {"real": [], "healthy": [], "lesion_mapped": []}
    auto = work / "auto_masks"
    auto.mkdir(parents=True)
    entries = []
    for i in range(n):
        rgb, labels = _photo(i)
        r = _record("real", i)
        real.put_image(r.sample_id, encode_png(rgb))
        real.put_mask(r.sample_id, labels)
        h = _record("healthy", i, parent_id=r.sample_id, disease="healthy")
        clean = rgb.copy()
        clean[18:30, 18:30] = (200, 150, 120)
        healthy.put_image(h.sample_id, encode_png(clean))
        healthy.put_mask(h.sample_id, np.full_like(labels, 4))
        recs["real"].append(r)
        recs["healthy"].append(h)
        np.save(auto / f"{i:06d}.npy", labels.astype(np.int64))
        entries.append({"source_id": f"demo:{i:06d}", "file": f"{i:06d}.npy", "accepted": True,
                        "confidence": 0.9, "method": "cpu", "version": "1", "reason": None, "detail": None})
        ids["real"].append(r.sample_id)
        ids["healthy"].append(h.sample_id)
        ids["masks"].append(f"demo:{i:06d}")
    for j in range(2):
        m = _record("lesion_mapped", 100 + j, base_id=ids["healthy"][j], donor_id=ids["real"][j + 1])
        rgb, labels = _photo(j)
        mapped.put_image(m.sample_id, encode_png(rgb))
        mapped.put_mask(m.sample_id, labels)
        recs["lesion_mapped"].append(m)
        ids["lesion_map"].append(m.sample_id)
    for kind, store in (("real", real), ("healthy", healthy), ("lesion_mapped", mapped)):
        store.finish_shard("shard-00000", recs[kind], [])
    (auto / "auto_masks.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    return ids


class Running:
    """A review server over a work folder, serving in a thread until `close`."""

    def __init__(self, work: Path, decisions: Path, reviewer: str = "ann", host: str | None = None):
        from builder.published.review.queues import Queues
        from builder.published.review.server import Review, make_server

        self.review = Review(Queues(work), decisions, reviewer)
        self.server, self.url = make_server(self.review, host=host, port=0)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
