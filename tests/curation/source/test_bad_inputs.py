"""Bad inputs: image modes, tiny photos, odd masks, non-UTF-8 tables, links out of the source,
photos with no skin left, and the last guard against publishing a source photo."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from builder.build.publish import refuse_source_copies
from builder.core.errors import BuildError, SampleRejected, SourceError
from builder.core.schema import LABEL_LESION, LABEL_SKIN
from builder.core.store import StageStore, encode_png
from curation.curate import hash_records
from curation.source.images import MIN_SIDE_PX, read_photo
from curation.source.ingest import ingest_source
from curation.source.metadata import read_source_table
from tests.healthy_fixtures import _put_real

HEADER = ",DDI_ID,DDI_file,skin_tone,malignant,disease\n"


def _photo(shared_data, i=0) -> Image.Image:
    """A real Fitzpatrick17k photo (RGB, 8-bit)."""
    return Image.open(sorted((shared_data / "fitz17k_lesions" / "images").iterdir())[i]).convert("RGB")


def _ddi_source(root: Path, photos: dict[str, Image.Image | bytes], masks: dict[str, np.ndarray] | None = None):
    """A DDI-layout folder: one table row per photo (stem -> image or raw bytes), optional .npy masks."""
    root.mkdir(parents=True, exist_ok=True)
    rows = [f"{i},{i + 1},{stem}.png,12,FALSE,melanocytic-nevi" for i, stem in enumerate(photos)]
    (root / "ddi_metadata.csv").write_text(HEADER + "\n".join(rows) + "\n")
    for stem, im in photos.items():
        if isinstance(im, bytes):
            (root / f"{stem}.png").write_bytes(im)
        else:
            im.save(root / f"{stem}.png")
    (root / "masks").mkdir(exist_ok=True)
    for stem, m in (masks or {}).items():
        np.save(root / "masks" / f"{stem}.npy", m)
    return root


def _ingest(src: Path, tmp_path: Path) -> tuple[dict, dict]:
    store = StageStore(tmp_path / "real")
    ingest_source(src, None, store, workers=1)
    recs = {r.source_ids[0].split(":")[1]: store.read_image(r.sample_id) for r in store.records()}
    return recs, {r.item_id.split(":")[1]: r for r in store.rejections()}


# -- image modes ---------------------------------------------------------------------------------
def test_16bit_grayscale_png_is_scaled_not_clipped(shared_data, tmp_path):
    """Today a 16-bit grayscale PNG was stored all-white (Pillow clips I;16 to 255)."""
    gray8 = np.asarray(_photo(shared_data).convert("L")).astype(np.uint16)
    gray16 = gray8 * 257 + (np.arange(gray8.size).reshape(gray8.shape) % 200).astype(np.uint16)  # low bits set
    src = _ddi_source(tmp_path / "src", {"000001": Image.fromarray(gray16)})
    assert Image.open(src / "000001.png").mode == "I;16"
    recs, rej = _ingest(src, tmp_path)
    rgb = recs["000001"]
    assert not rej and rgb.dtype == np.uint8 and rgb.shape == gray8.shape + (3,)
    want = (gray16.astype(np.int64) * 255 + 32767) // 65535
    assert np.array_equal(rgb[..., 0], want) and np.array_equal(rgb[..., 2], want)
    assert np.abs(rgb[..., 0].astype(int) - gray8).max() <= 1 and rgb.min() < 100  # not all white


def _encode(im: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def _mode_cases():
    """Every mode Pillow opens from a file, as (mode, format, expected reason or None)."""
    ramp = np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))
    L = Image.fromarray(ramp)
    rgba = Image.merge("RGBA", (L, L, L, Image.new("L", L.size, 255)))
    see_through = rgba.copy()
    see_through.putpixel((0, 0), (0, 0, 0, 0))
    p_clear = L.convert("P")
    p_clear.info["transparency"] = 0
    return [("1", L.convert("1"), "PNG", None), ("L", L, "PNG", None), ("P", L.convert("P"), "PNG", None),
            ("P+tRNS", p_clear, "PNG", "transparent_pixels"), ("RGB", L.convert("RGB"), "PNG", None),
            ("RGBA", rgba, "PNG", None), ("RGBA-clear", see_through, "PNG", "transparent_pixels"),
            ("LA", rgba.convert("LA"), "PNG", None), ("CMYK", L.convert("CMYK"), "JPEG", None),
            ("CMYK-tiff", L.convert("CMYK"), "TIFF", None), ("YCbCr", L.convert("YCbCr"), "JPEG", None),
            ("I;16", Image.fromarray(ramp.astype(np.uint16) * 257), "PNG", None),
            ("I;16-tiff", Image.fromarray(ramp.astype(np.uint16) * 257), "TIFF", None),
            ("I", Image.fromarray(ramp.astype(np.int32) * 257), "TIFF", "unsupported_image_mode"),
            ("F", Image.fromarray(ramp.astype(np.float32)), "TIFF", "unsupported_image_mode"),
            ("LAB", L.convert("RGB").convert("LAB"), "TIFF", None),
            ("GIF", L.convert("P"), "GIF", None), ("WEBP", L.convert("RGB"), "WEBP", None)]


@pytest.mark.parametrize("name,im,fmt,reason", _mode_cases(), ids=lambda x: x if isinstance(x, str) else "")
def test_every_mode_becomes_faithful_rgb8_or_a_named_rejection(name, im, fmt, reason):
    data = _encode(im, fmt)
    if reason:
        with pytest.raises(SampleRejected) as e:
            read_photo(data, f"x.{fmt.lower()}")
        assert e.value.reason == reason and f"x.{fmt.lower()}" in str(e.value)
        return
    rgb = read_photo(data, "x")
    assert rgb.dtype == np.uint8 and rgb.shape == (64, 64, 3)
    gray = rgb.astype(int).mean(axis=2)
    ramp = np.tile(np.arange(64) * 4, (64, 1))
    tol = 128 if name == "1" else 12  # "1" is dithered to black/white; JPEG/LAB round-trips are lossy
    assert np.abs(gray - ramp).mean() < tol, (name, gray[0, ::8])
    assert gray[:, -8:].mean() - gray[:, :8].mean() > 150  # the ramp survives: not clipped or flattened


def test_multi_frame_file_is_rejected_by_name():
    frames = [Image.new("RGB", (64, 64), c) for c in ((10, 20, 30), (200, 100, 50))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(SampleRejected, match="holds 2 frames") as e:
        read_photo(buf.getvalue(), "anim.gif")
    assert e.value.reason == "multi_frame_image"


# -- sizes -----------------------------------------------------------------------------------------
def test_tiny_images_rejected_naming_the_image(shared_data, tmp_path):
    """Today 1x1 was `empty_lesion` (pointing at the mask) and 16x16 was published."""
    photo, mask = _photo(shared_data), np.load(shared_data / "sddi_masks" / "000001.npy")
    src = _ddi_source(tmp_path / "src", {"000001": photo.resize((1, 1)), "000002": photo.resize((16, 16)),
                                         "000003": photo.resize((MIN_SIDE_PX, 200)),
                                         "000004": photo.resize((MIN_SIDE_PX - 1, 300))},
                      {s: mask for s in ("000001", "000002", "000003", "000004")})
    recs, rej = _ingest(src, tmp_path)
    assert sorted(recs) == ["000003"]
    for stem, size in (("000001", "1x1"), ("000002", "16x16"), ("000004", f"{MIN_SIDE_PX - 1}x300")):
        assert rej[stem].reason == "image_too_small"
        assert f"{src / (stem + '.png')} is {size} px" in rej[stem].detail and "source.min_side_px" in rej[stem].detail


def test_min_side_is_in_the_config():
    from builder.core.config import load_config

    assert load_config("1.1").source.min_side_px == MIN_SIDE_PX == 64


# -- masks -----------------------------------------------------------------------------------------
def test_mask_of_another_aspect_is_rejected_not_stretched(shared_data, tmp_path):
    photo = _photo(shared_data).resize((344, 360))
    sddi = np.load(shared_data / "sddi_masks" / "000001.npy")  # the real 256x256 sDDI form
    import cv2

    same_aspect = cv2.resize(sddi.astype(np.uint8), (172, 180), interpolation=cv2.INTER_NEAREST)
    tall = cv2.resize(sddi.astype(np.uint8), (64, 512), interpolation=cv2.INTER_NEAREST)
    src = _ddi_source(tmp_path / "src", {"000001": photo, "000002": photo, "000003": photo},
                      {"000001": sddi, "000002": same_aspect, "000003": tall})
    recs, rej = _ingest(src, tmp_path)
    assert sorted(recs) == ["000001", "000002"]
    assert rej["000003"].reason == "mask_aspect_mismatch"
    assert "mask is 64x512 px, photo 344x360 px" in rej["000003"].detail
    assert "000003.npy" in rej["000003"].detail


@pytest.mark.parametrize("mask,photo,ok", [((1808, 1276), (240, 169), True),   # real Fitzpatrick17k mask, photo downsized
                                           ((181, 172), (360, 344), True), ((180, 150), (360, 344), False),
                                           ((256, 256), (360, 344), False)])  # 256x256 is the sDDI form only
def test_binary_mask_aspect_tolerates_resize_rounding_only(mask, photo, ok):
    from curation.source.masks import MaskError, check_mask_shape

    if ok:
        check_mask_shape(Path("m.png"), mask, *photo)
    else:
        with pytest.raises(MaskError, match="not the photo's aspect ratio"):
            check_mask_shape(Path("m.png"), mask, *photo)


# -- metadata bytes --------------------------------------------------------------------------------
def test_non_utf8_byte_in_the_real_table_names_file_line_and_offset(shared_data, tmp_path):
    """Today polars died with `invalid utf-8 sequence`, naming nothing."""
    src = tmp_path / "src"
    src.mkdir()
    data = (shared_data / "ddi_metadata.csv").read_bytes()
    lines = data.split(b"\n")
    offset = sum(len(x) + 1 for x in lines[:16]) + lines[16].index(b",") + 3  # inside line 17
    (src / "ddi_metadata.csv").write_bytes(data[:offset] + b"\xe9" + data[offset:])
    with pytest.raises(SourceError) as e:
        read_source_table(src)
    msg = str(e.value)
    assert f"ddi_metadata.csv line 17, byte offset {offset}" in msg and "0xe9 is not UTF-8" in msg
    assert "iconv" in msg and "\n" not in msg


def test_malformed_csv_is_refused_naming_the_file(tmp_path):
    (tmp_path / "ddi_metadata.csv").write_text(HEADER + '0,1,"000001.png,12\n')  # unclosed quote
    with pytest.raises(SourceError, match="ddi_metadata.csv: not a readable CSV table"):
        read_source_table(tmp_path)


# -- paths -------------------------------------------------------------------------------------------
def test_links_out_of_the_source_root_are_refused(shared_data, tmp_path):
    """Today an image symlinked to a file outside the source folder was read and published."""
    photo = _photo(shared_data)
    src = _ddi_source(tmp_path / "src", {"000001": photo, "000002": photo, "000003": photo},
                      {"000001": np.load(shared_data / "sddi_masks" / "000001.npy")})
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    photo.save(outside / "secret.png")
    (src / "000002.png").unlink()
    (src / "000002.png").symlink_to(outside / "secret.png")
    shutil.copy(shared_data / "sddi_masks" / "000001.npy", outside / "m.npy")
    (src / "masks" / "000003.npy").symlink_to(outside / "m.npy")
    (src / "inner.png").symlink_to(src / "000001.png")  # a link that stays inside is fine
    recs, rej = _ingest(src, tmp_path)
    assert sorted(recs) == ["000001"]
    assert rej["000002"].reason == rej["000003"].reason == "path_escapes_root"
    assert str(outside / "secret.png") in rej["000002"].detail and str(outside / "m.npy") in rej["000003"].detail
    assert rej["inner.png"].reason == "image_without_metadata"


def test_table_linked_from_outside_is_refused(shared_data, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "ddi_metadata.csv").symlink_to(shared_data / "ddi_metadata.csv")
    with pytest.raises(SourceError, match="outside the source folder"):
        read_source_table(tmp_path / "src")


# -- no skin left, and the last guard ----------------------------------------------------------------
def _real_store(tmp_path: Path, shared_data: Path, masks: list[np.ndarray]) -> StageStore:
    import cv2

    real = StageStore(tmp_path / "real")
    recs = []
    for i, m in enumerate(masks):
        rgb = np.asarray(_photo(shared_data, i).resize((200, 160)))
        lm = cv2.resize(m.astype(np.uint8), (200, 160), interpolation=cv2.INTER_NEAREST)
        recs.append(_put_real(real, rgb, lm, f"ddi:{i:06d}", 1, "melanoma", True))
    real.finish_shard("real", recs, [])
    return real


def test_photo_with_no_skin_left_is_rejected(shared_data, tmp_path):
    """Today a mask whose lesion covers the whole photo published the photo itself as `healthy`.
    The real sDDI mask 000221 has no skin either (ruler, marker, a little lesion)."""
    from builder.core.config import HealthyConfig
    from generation.healthy.stage import run_healthy

    whole = np.full((256, 256), LABEL_LESION, np.int32)
    no_skin = np.load(shared_data / "sddi_masks" / "000221.npy")
    assert not (no_skin == LABEL_SKIN).any()
    fine = np.load(shared_data / "sddi_masks" / "000001.npy")
    real = _real_store(tmp_path, shared_data, [whole, no_skin, fine])
    out = StageStore(tmp_path / "healthy")
    summary = run_healthy(real, out, HealthyConfig())
    assert summary.done == 1 and dict(summary.rejected) == {"no_skin_to_inpaint": 2}
    assert all("leaves no skin pixel" in r.detail for r in out.rejections())


def test_last_guard_refuses_a_source_photo_by_bytes_or_pixels(shared_data, tmp_path):
    real = _real_store(tmp_path, shared_data, [np.load(shared_data / "sddi_masks" / "000001.npy")] * 2)
    real_recs = real.records()
    real_hashes, _ = hash_records(real_recs, real, workers=1)
    healthy = StageStore(tmp_path / "healthy")
    import dataclasses

    copies = []
    for rec, level in zip(real_recs, (None, 9)):  # the same bytes; the same pixels, other bytes
        data = real.read_image_bytes(rec) if level is None else encode_png(real.read_image(rec.sample_id), level)
        sid = "healthy-" + rec.sample_id
        copies.append(dataclasses.replace(rec, sample_id=sid, kind="healthy", image_path=healthy.put_image(sid, data)))
    stores = {"real": real, "healthy": healthy}
    for copy, how in zip(copies, ("bytes", "pixels")):
        hashes, _ = hash_records([copy], healthy, workers=1)
        with pytest.raises(BuildError, match=f"{copy.sample_id} = {how} of {copy.source_ids[0]}"):
            refuse_source_copies([copy], stores, real_recs, real_hashes, hashes)
    changed = np.array(real.read_image(real_recs[0].sample_id))
    changed[0, 0] ^= 1
    sid = "healthy-changed"
    other = dataclasses.replace(copies[0], sample_id=sid, image_path=healthy.put_image(sid, encode_png(changed)))
    refuse_source_copies([other], stores, real_recs, real_hashes, hash_records([other], healthy, workers=1)[0])
