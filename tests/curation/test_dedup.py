"""De-duplication on real photos with planted exact and near copies, and the sub-quadratic search."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from curation.dedup import (ImageHash, brute_force_pairs, cross_group_pairs, find_duplicates,
                            hash_image_bytes, hash_images, near_pairs)


def _photos(shared_data, n):
    files = sorted((shared_data / "fitz17k_lesions" / "images").iterdir())[:n]
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


def _png(rgb, level=6):
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=level)
    return buf.getvalue()


def _jpeg(rgb, quality=85):
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _planted_codes(n, radius, seed=0, clustered=False):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)
    if clustered:  # real pHashes are not uniform: many share long bit prefixes
        codes &= np.uint64(0x0000_00FF_FFFF_FFFF)
    for s, d in zip(range(0, n // 2, 7), range(n // 2, n, 7)):
        flips = rng.choice(64, rng.integers(0, radius + 3), replace=False)
        codes[d] = codes[s] ^ np.uint64(sum(1 << int(b) for b in flips))
    return codes


@pytest.mark.parametrize("radius", [0, 3, 6, 10])
def test_near_pairs_equal_brute_force(radius):
    codes = _planted_codes(3000, radius, seed=radius)
    fast, slow = near_pairs(codes, radius), brute_force_pairs(codes, radius)
    assert len(slow) > 50
    np.testing.assert_array_equal(fast, slow)


@pytest.mark.parametrize("chunks", [7, 8, 9, 11])
def test_near_pairs_exact_for_any_chunking_on_clustered_codes(chunks):
    codes = _planted_codes(2000, 6, seed=1, clustered=True)
    np.testing.assert_array_equal(near_pairs(codes, 6, chunks=chunks), brute_force_pairs(codes, 6))


def test_exact_hash_sees_pixels_not_bytes(shared_data):
    rgb = _photos(shared_data, 1)[0]
    a, b = hash_image_bytes("a", _png(rgb, 1)), hash_image_bytes("b", _png(rgb, 9))
    assert _png(rgb, 1) != _png(rgb, 9)
    assert a.pixel_hash == b.pixel_hash and a.phash == b.phash
    c = hash_image_bytes("c", _jpeg(rgb))
    assert c.pixel_hash != a.pixel_hash
    assert np.bitwise_count(np.uint64(a.phash ^ c.phash)) <= 6  # a JPEG re-save is a near copy


def test_distinct_real_photos_are_not_near_duplicates(shared_data):
    hashes = [hash_image_bytes(str(i), _png(rgb)) for i, rgb in enumerate(_photos(shared_data, 39))]
    assert len({h.pixel_hash for h in hashes}) == 39
    assert find_duplicates(hashes, 6) == []


def test_planted_duplicates_dropped_inside_a_split_and_reported_across(shared_data):
    p0, p1, p2 = _photos(shared_data, 3)
    small = np.asarray(Image.fromarray(p0).resize((p0.shape[1] // 2, p0.shape[0] // 2)))
    items = {
        "ddi:1": _png(p0), "ddi:2": _png(p0, 1),  # exact copy, other bytes
        "ddi:3": _jpeg(small, 90),                 # near copy, smaller: the big one stays
        "ddi:4": _png(p1), "ddi:5": _png(p2), "ddi:6": _jpeg(p2, 80),
    }
    hashes = [hash_image_bytes(k, v) for k, v in items.items()]
    split = {"ddi:1": "train", "ddi:2": "train", "ddi:3": "train", "ddi:4": "train",
             "ddi:5": "train", "ddi:6": "test"}
    dups = find_duplicates(hashes, 6, group_of=split)
    got = {(d.sample_id, d.dup_of, d.kind) for d in dups}
    assert got == {("ddi:2", "ddi:1", "exact"), ("ddi:3", "ddi:1", "near")}
    assert {d.to_rejection().reason for d in dups} == {"exact_duplicate", "near_duplicate"}
    assert "dup_of=ddi:1" in dups[0].to_rejection().detail
    assert [(a, b) for a, b, _ in cross_group_pairs(hashes, 6, split)] == [("ddi:5", "ddi:6")]
    # Without groups the cross-split pair is an ordinary duplicate: the PNG (same size, lower id) stays.
    assert ("ddi:6", "ddi:5", "near") in {(d.sample_id, d.dup_of, d.kind) for d in find_duplicates(hashes, 6)}


def test_keep_choice_is_greedy_and_order_free():
    # A~B and B~C but A and C are 8 bits apart: keep A and C, drop B (never a chain of dup_of).
    a, b, c = 0, 0b1111, 0b1111_1111
    hashes = [ImageHash(sid, sid, code, 100) for sid, code in (("a", a), ("b", b), ("c", c))]
    want = [("b", "a")]
    assert [(d.sample_id, d.dup_of) for d in find_duplicates(hashes, 4)] == want
    assert [(d.sample_id, d.dup_of) for d in find_duplicates(hashes[::-1], 4)] == want


def test_parallel_hashing_matches_serial_and_rejects_unreadable(shared_data, tmp_path):
    files = sorted((shared_data / "fitz17k_lesions" / "images").iterdir())[:8]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    items = [(f.stem, f) for f in files] + [("zz-broken", bad)]
    serial, rej1 = hash_images(items, workers=1)
    parallel, rej2 = hash_images(items, workers=2)
    assert serial == parallel and len(serial) == 8
    assert [(r.item_id, r.reason) for r in rej1] == [("zz-broken", "unreadable_image")] == \
           [(r.item_id, r.reason) for r in rej2]
    assert str(bad) in rej1[0].detail


def test_variants_sharing_a_source_are_not_duplicates():
    # Two lesions mapped onto one base are near each other by design; an unrelated look-alike is a copy.
    hashes = [ImageHash("lm-1", "p1", 0b0, 100), ImageHash("lm-2", "p2", 0b11, 100),
              ImageHash("other", "p3", 0b111, 100), ImageHash("lm-3", "p1", 0b0, 100)]
    lineage = {"lm-1": {"ddi:1", "ddi:7"}, "lm-2": {"ddi:1", "ddi:9"}, "other": {"ddi:5"}, "lm-3": {"ddi:1"}}
    got = {(d.sample_id, d.dup_of, d.kind) for d in find_duplicates(hashes, 6, lineage=lineage)}
    assert got == {("lm-3", "lm-1", "exact"), ("other", "lm-1", "near")}


def test_near_pairs_keep_filter_equals_filtering_brute_force_on_dense_clusters():
    """Synthetics of one base are all near each other: a dense cluster of 400 codes gives ~80k pairs,
    most of them within one lineage. A `keep` filter applied while searching gives exactly the
    brute-force pairs that pass it (the search no longer holds the pairs it drops)."""
    from curation.dedup import group_filter, lineage_filter

    rng = np.random.default_rng(3)
    centres = rng.integers(0, 2**63, size=5, dtype=np.uint64)
    centres[1] = centres[0] ^ np.uint64(0b101)  # two bases that look alike: pairs across lineages
    codes = np.concatenate([c ^ (np.uint64(1) << rng.integers(0, 64, size=(400, 1)).astype(np.uint64)).ravel()
                            for c in centres] + [rng.integers(0, 2**63, size=500, dtype=np.uint64)])
    base = [f"b{k // 400}" if k < 2000 else f"u{k}" for k in range(len(codes))]
    split = rng.choice(["train", "test"], size=len(codes)).tolist()
    slow = brute_force_pairs(codes, 6)
    assert len(slow) > 200_000
    same_split = group_filter(split, same=True)
    other_base = lineage_filter([{b, "donor:x" if k % 2 else "donor:y"} for k, b in enumerate(base)])
    i, j = slow[:, 0], slow[:, 1]
    for keep in (group_filter(split, same=False), lambda a, b: same_split(a, b) & other_base(a, b)):
        want = slow[keep(i, j)]
        got = near_pairs(codes, 6, keep=keep)
        np.testing.assert_array_equal(got, want)
    # every kept pair of the lineage filter shares neither base nor donor
    got = near_pairs(codes, 6, keep=other_base)
    assert len(got) and all(base[a] != base[b] and a % 2 != b % 2 for a, b, _ in got.tolist())
