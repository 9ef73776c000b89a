"""Download the real test data (sDDI masks, DDI and Fitzpatrick17k metadata, DermSynth3D's Fitzpatrick17k photos
with hand masks) at pinned commits into the layout of ../shared/data, checking the sha256 of every file.

    python scripts/fetch_test_data.py                      # into ../shared/data (or $CGDDI_SHARED_DATA)
    python scripts/fetch_test_data.py --dest DIR           # anywhere; then CGDDI_SHARED_DATA=DIR python -m pytest
    python scripts/fetch_test_data.py --check              # verify what is there, download nothing
    python scripts/fetch_test_data.py --ddi-metadata FILE  # your own copy of DDI's ddi_metadata.csv (sha-checked)

What comes from where, and each file's sha256, is in scripts/test_data_manifest.json (written from the
project's data folder with --write-manifest). Two CSVs are not downloaded but derived from downloaded files
(sddi_masks/manifest.csv, fitz17k_lesions/metadata.csv); they are sha-checked too, so the result is
byte-identical to the folder the tests were written against. A rerun skips files already verified; a file
is moved into place only after its sha256 matched, so an interrupted run leaves nothing half-written.

The URLs were assembled offline from the repositories' file lists (no network where this was written):
they have not been fetched. A URL that moved fails with its address and the file it was for; the sha256
check, not the URL, is what guarantees the content. Licences: see the manifest's `sources` (research and
non-commercial terms; never re-host these files).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import csv
import hashlib
import io
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MANIFEST = Path(__file__).with_name("test_data_manifest.json")
DEFAULT_DEST = Path(os.environ.get("CGDDI_SHARED_DATA", REPO.parent / "shared" / "data"))
HOSTS = ("https://raw.githubusercontent.com", "https://media.githubusercontent.com")
BACKOFF_S = 0.5  # first retry wait; doubles per try
LFS_POINTER = b"version https://git-lfs.github.com/spec/"
USER_AGENT = "cgddi-toolkit fetch_test_data"


class FetchError(Exception):
    """One file could not be fetched or did not match its sha256 (the message names it and why)."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _mirrored(url: str, mirror: str | None) -> str:
    """The same path on a mirror (tests: a loopback server) instead of GitHub's hosts (origin replaced)."""
    if not mirror:
        return url
    for host in HOSTS:
        if url.startswith(host + "/"):
            return mirror.rstrip("/") + url[len(host):]
    return url


def _lfs_url(url: str) -> str | None:
    """Where GitHub serves the real bytes of a Git LFS file whose raw URL gave its pointer."""
    raw = HOSTS[0] + "/"
    return f"{HOSTS[1]}/media/{url[len(raw):]}" if url.startswith(raw) else None


def _download(url: str, part: Path, timeout: float, tries: int = 3) -> None:
    """GET url into part; retries transient failures (5xx, connection) with backoff; 4xx fails at once."""
    for attempt in range(1, tries + 1):
        try:
            req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
            with urllib.request.urlopen(req, timeout=timeout) as resp, open(part, "wb") as out:
                shutil.copyfileobj(resp, out, 1 << 20)
            return
        except urllib.error.HTTPError as e:
            if e.code < 500 or attempt == tries:
                raise FetchError(f"HTTP {e.code} {e.reason} from {url}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            if attempt == tries:
                reason = getattr(e, "reason", e)
                raise FetchError(f"cannot reach {url} ({reason}); check the network or pass --mirror") from None
        time.sleep(BACKOFF_S * 2 ** (attempt - 1))


def fetch_one(entry: dict, dest: Path, mirror: str | None, timeout: float) -> str:
    """'present' (already verified) or 'fetched'; raises FetchError naming the file, URL and sha256s."""
    target = dest / entry["path"]
    if target.is_file() and sha256_file(target) == entry["sha256"]:
        return "present"
    part = dest / ".partial" / (entry["path"].replace("/", "__") + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    url = _mirrored(entry["url"], mirror)
    try:
        _download(url, part, timeout)
        with open(part, "rb") as f:
            is_pointer = f.read(len(LFS_POINTER)) == LFS_POINTER
        if is_pointer and _lfs_url(entry["url"]):
            url = _mirrored(_lfs_url(entry["url"]), mirror)
            _download(url, part, timeout)
        got = sha256_file(part)
        if got != entry["sha256"]:
            raise FetchError(f"{entry['path']}: sha256 {got} from {url}, expected {entry['sha256']}; the source "
                             "changed or the download was altered (nothing was written)")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, target)
        return "fetched"
    except FetchError as e:
        raise FetchError(f"{entry['path']}: {e}" if not str(e).startswith(entry["path"]) else str(e)) from None
    finally:
        part.unlink(missing_ok=True)


def copy_local(entry: dict, source: Path, dest: Path) -> str:
    """Take a file the user already has (e.g. DDI's own ddi_metadata.csv) after checking its sha256."""
    got = sha256_file(source)
    if got != entry["sha256"]:
        raise FetchError(f"{source}: sha256 {got}, expected {entry['sha256']} for {entry['path']}; "
                         "use the table exactly as DDI publishes it, or drop the option to download it")
    target = dest / entry["path"]
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return "copied"


# ---- derived files: computed from downloaded ones, byte for byte as in the data folder ----

def sddi_manifest(dest: Path, splits: dict[str, str]) -> bytes:
    """sddi_masks/manifest.csv: per mask its FEDD folders, label fractions and presences, DDI's labels."""
    import numpy as np

    with open(dest / "ddi_metadata.csv", newline="", encoding="utf-8") as f:
        ddi = {r["DDI_file"].rsplit(".", 1)[0]: r for r in csv.DictReader(f)}
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["file", "ddi_id", "splits", "lesion_frac", "has_marker", "has_ruler", "has_background",
                "skin_frac", "ddi_skin_tone", "ddi_malignant", "ddi_disease"])
    for name in sorted(splits):
        m = np.load(dest / "sddi_masks" / name, allow_pickle=False)
        stem, n = name.rsplit(".", 1)[0], m.size
        row = ddi[stem]
        w.writerow([name, int(stem), splits[name], round(float((m == 1).sum() / n), 5), int((m == 2).any()),
                    int((m == 3).any()), int((m == 0).any()), round(float((m == 4).sum() / n), 4),
                    row["skin_tone"], row["malignant"], row["disease"]])
    return buf.getvalue().encode()


FITZ_COLUMNS = ["md5hash", "image_file", "source_image_path", "width", "height", "image_format", "image_mode",
                "mask_lesions", "lesions_frac", "mask_selected_lesion", "selected_lesion_frac", "mask_nonskin",
                "nonskin_frac", "fitzpatrick_scale", "fitzpatrick_centaur", "label", "nine_partition_label",
                "three_partition_label", "fitz17k_qc", "original_url"]


def fitz17k_metadata(dest: Path, cases: dict[str, dict]) -> bytes:
    """fitz17k_lesions/metadata.csv: per photo its size, format, mask fractions and Fitzpatrick17k's labels."""
    import numpy as np
    from PIL import Image

    def frac(rel: str) -> float:
        with Image.open(dest / "fitz17k_lesions" / rel) as im:
            a = np.asarray(im)
        return round(float(((a[..., 0] if a.ndim == 3 else a) > 127).mean()), 5)

    with open(dest / "fitzpatrick17k.csv", newline="", encoding="utf-8") as f:
        fz = {r["md5hash"]: r for r in csv.DictReader(f)}
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(FITZ_COLUMNS)
    for md5 in sorted(cases):
        case, z = cases[md5], fz[md5]
        with Image.open(dest / "fitz17k_lesions" / case["image_file"]) as im:
            size, fmt, mode = im.size, im.format, im.mode
        masks = {k: f"masks/{md5}_{k}.png" for k in ("lesions", "selected_lesion", "nonskin")}
        w.writerow([md5, case["image_file"], case["source_image_path"], size[0], size[1], fmt, mode,
                    masks["lesions"], frac(masks["lesions"]), masks["selected_lesion"],
                    frac(masks["selected_lesion"]), masks["nonskin"], frac(masks["nonskin"]),
                    z["fitzpatrick_scale"], z["fitzpatrick_centaur"], z["label"], z["nine_partition_label"],
                    z["three_partition_label"], z["qc"], z["url"]])
    return buf.getvalue().encode()


def derive(entry: dict, dest: Path, manifest: dict) -> str:
    """Write one derived file (after its inputs are verified) if its bytes hash to the manifest's sha256."""
    target = dest / entry["path"]
    if target.is_file() and sha256_file(target) == entry["sha256"]:
        return "present"
    if entry["recipe"] == "sddi_manifest":
        data = sddi_manifest(dest, manifest["sddi_splits"])
    elif entry["recipe"] == "fitz17k_metadata":
        data = fitz17k_metadata(dest, manifest["fitz17k_cases"])
    else:
        raise FetchError(f"{entry['path']}: unknown recipe {entry['recipe']!r} in {MANIFEST.name}")
    got = hashlib.sha256(data).hexdigest()
    if got != entry["sha256"]:
        raise FetchError(f"{entry['path']}: derived bytes hash to {got}, expected {entry['sha256']} "
                         "(numpy/Pillow read the inputs differently?); nothing was written")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return "derived"


# ---- the run ----

def _bar(total: int, quiet: bool):
    """A progress bar on a terminal only (a log file gets the summary line alone)."""
    if quiet or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="file", desc="test data", file=sys.stderr, leave=False)


def fetch_all(manifest: dict, dest: Path, mirror: str | None = None, ddi_metadata: Path | None = None,
              workers: int = 8, timeout: float = 60.0, quiet: bool = False) -> tuple[dict, list[str]]:
    """Download (or verify) every file, then derive the CSVs; returns (counts by status, problems)."""
    counts: dict[str, int] = {}
    problems: list[str] = []
    files = manifest["files"]
    bar = _bar(len(files) + len(manifest["derived"]), quiet)

    def one(entry: dict) -> str:
        if ddi_metadata and entry["path"] == "ddi_metadata.csv":
            return copy_local(entry, ddi_metadata, dest)
        return fetch_one(entry, dest, mirror, timeout)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for entry, fut in [(e, pool.submit(one, e)) for e in files]:
            try:
                status = fut.result()
                counts[status] = counts.get(status, 0) + 1
            except FetchError as e:
                problems.append(str(e))
            if bar:
                bar.update()
    for entry in manifest["derived"]:
        if problems:  # derived files need every input verified
            problems.append(f"{entry['path']}: not derived (inputs missing; see above)")
            continue
        try:
            status = derive(entry, dest, manifest)
            counts[status] = counts.get(status, 0) + 1
        except FetchError as e:
            problems.append(str(e))
        if bar:
            bar.update()
    if bar:
        bar.close()
    shutil.rmtree(dest / ".partial", ignore_errors=True)
    return counts, problems


def check_all(manifest: dict, dest: Path) -> list[str]:
    """Problems with the folder as it is: missing files and sha256 mismatches (downloads nothing)."""
    problems = []
    for entry in manifest["files"] + manifest["derived"]:
        path = dest / entry["path"]
        if not path.is_file():
            problems.append(f"{entry['path']}: missing")
        elif (got := sha256_file(path)) != entry["sha256"]:
            problems.append(f"{entry['path']}: sha256 {got}, expected {entry['sha256']}")
    return problems


def write_readme(manifest: dict, dest: Path) -> None:
    """A README naming each source, commit and licence (only where the folder has none)."""
    path = dest / "README.md"
    if path.exists():
        return
    lines = ["# Real data for the cgddi-toolkit tests", "",
             "Fetched by `scripts/fetch_test_data.py`; every file's sha256 is in `scripts/test_data_manifest.json`.",
             "Read in place by the tests; never copy into the repository or re-host.", "",
             "| source | repository @ commit | files | licence |", "|---|---|---|---|"]
    for s in manifest["sources"].values():
        lines.append(f"| {s['what']} | {s['repo']} @ {s['commit']} | {s['files']} | {s['licence']} |")
    path.write_text("\n".join(lines) + "\n")


# ---- the manifest (maintainers: --write-manifest DIR, from a complete, known-good data folder) ----

SOURCES = {
    "fedd": dict(what="sDDI label maps (.npy, 256x256)", repo="hectorcarrion/FEDD", commit="4bc559f",
                 files="sddi_masks/*.npy", licence="no licence file in the repository; cite FEDD (MICCAI 2023)",
                 note="commit as recorded with the data (abbreviated; GitHub resolves it); paths "
                      "ddi_labels/<split folder>/<stem>.npy seen in the repository's file list"),
    "ddi": dict(what="DDI metadata table as DDI publishes it", repo="rizwanswati/SkinLesionClassification",
                commit="90408142db3932d85e2b509efc595206823781ce", files="ddi_metadata.csv",
                licence="Stanford DDI research-use terms (this is a public copy in a third-party repository; "
                        "with DDI's own download, pass --ddi-metadata)",
                note="stored copy has the same length (30,518 bytes) and rows as the data folder's"),
    "fitzpatrick17k": dict(what="Fitzpatrick17k metadata table", repo="mattgroh/fitzpatrick17k",
                           commit="fac223ae67788c7cd48c9384b673919b84efcce3", files="fitzpatrick17k.csv",
                           licence="CC BY-NC-SA 3.0", note="stored copy has the same length (4,104,341 bytes)"),
    "dermsynth3d": dict(what="Fitzpatrick17k photos with hand-drawn lesion / non-skin masks",
                        repo="sfu-mial/DermSynth3D", commit="c6d6a3d66c8e1a041749ce35ee98aa211d310115",
                        files="fitz17k_lesions/images/*, fitz17k_lesions/masks/*",
                        licence="repository AGPL-3.0; photos from Fitzpatrick17k, CC BY-NC-SA 3.0",
                        note="paths data/annotations/annotator1/<md5>/... seen in the repository's file list; "
                             "Git LFS pointers are followed to media.githubusercontent.com"),
}


def _raw(source: str, path: str) -> str:
    s = SOURCES[source]
    return f"{HOSTS[0]}/{s['repo']}/{s['commit']}/{urllib.parse.quote(path)}"


def _entry(src: Path, rel: str, url: str) -> dict:
    return {"path": rel, "sha256": sha256_file(src / rel), "size": (src / rel).stat().st_size, "url": url}


def build_manifest(src: Path) -> dict:
    """Every file of a complete data folder with its sha256 and pinned URL, plus what the derived CSVs need."""
    with open(src / "sddi_masks" / "manifest.csv", newline="") as f:
        splits = {r["file"]: r["splits"] for r in csv.DictReader(f)}
    with open(src / "fitz17k_lesions" / "metadata.csv", newline="") as f:
        cases = {r["md5hash"]: {"image_file": r["image_file"], "source_image_path": r["source_image_path"]}
                 for r in csv.DictReader(f)}
    files = [_entry(src, "ddi_metadata.csv", _raw("ddi", "ddi_metadata.csv")),
             _entry(src, "fitzpatrick17k.csv", _raw("fitzpatrick17k", "fitzpatrick17k.csv"))]
    for name, where in sorted(splits.items()):
        files.append(_entry(src, f"sddi_masks/{name}", _raw("fedd", f"ddi_labels/{where.split(';')[0]}/{name}")))
    for md5, case in sorted(cases.items()):
        files.append(_entry(src, f"fitz17k_lesions/{case['image_file']}",
                            _raw("dermsynth3d", case["source_image_path"])))
        for kind in ("lesions", "selected_lesion", "nonskin"):
            files.append(_entry(src, f"fitz17k_lesions/masks/{md5}_{kind}.png",
                                _raw("dermsynth3d", f"data/annotations/annotator1/{md5}/{kind}.png")))
    derived = []
    for rel, recipe, make in (("sddi_masks/manifest.csv", "sddi_manifest", lambda: sddi_manifest(src, splits)),
                              ("fitz17k_lesions/metadata.csv", "fitz17k_metadata",
                               lambda: fitz17k_metadata(src, cases))):
        if make() != (src / rel).read_bytes():
            raise SystemExit(f"error: {src / rel} is not what the recipe {recipe!r} derives; fix the recipe first")
        derived.append({"path": rel, "sha256": sha256_file(src / rel), "size": (src / rel).stat().st_size,
                        "recipe": recipe})
    return {"about": "Real test data for cgddi-toolkit: written by `scripts/fetch_test_data.py --write-manifest`; "
                     "URLs were not fetched when written (no network), the sha256s are of the files the tests use.",
            "sources": SOURCES, "files": files, "derived": derived, "sddi_splits": splits, "fitz17k_cases": cases}


def load_manifest(path: Path = MANIFEST) -> dict:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: cannot read the test-data manifest {path}: {e}") from None
    return manifest


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python scripts/fetch_test_data.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="data folder to fill (default: %(default)s)")
    p.add_argument("--check", action="store_true", help="only verify the folder against the manifest")
    p.add_argument("--ddi-metadata", type=Path, default=None, metavar="FILE",
                   help="use this copy of ddi_metadata.csv (e.g. from DDI's own download) instead of downloading it")
    p.add_argument("--mirror", default=None, metavar="URL",
                   help="fetch the same paths from this base URL instead of raw/media.githubusercontent.com")
    p.add_argument("--manifest", type=Path, default=MANIFEST, help="file list with sha256s (default: %(default)s)")
    p.add_argument("--workers", type=int, default=8, help="parallel downloads (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default: %(default)s)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only problems and the final summary")
    p.add_argument("--write-manifest", type=Path, default=None, metavar="DIR",
                   help="maintainers: write --manifest from the complete data folder DIR, then exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if args.write_manifest:
        manifest = build_manifest(args.write_manifest)
        args.manifest.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        print(f"wrote {args.manifest}: {len(manifest['files'])} files, {len(manifest['derived'])} derived")
        return 0
    manifest = load_manifest(args.manifest)
    total = len(manifest["files"]) + len(manifest["derived"])
    if args.check:
        problems = check_all(manifest, args.dest)
        for line in problems:
            print(f"problem: {line}", file=sys.stderr)
        print(f"{args.dest}: {total - len(problems)} of {total} files verified")
        return 1 if problems else 0
    if args.ddi_metadata and not args.ddi_metadata.is_file():
        print(f"error: --ddi-metadata {args.ddi_metadata} is not a file", file=sys.stderr)
        return 2
    try:
        args.dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"error: cannot create {args.dest} ({e.strerror}); pass --dest DIR", file=sys.stderr)
        return 2
    counts, problems = fetch_all(manifest, args.dest, args.mirror, args.ddi_metadata, args.workers,
                                 args.timeout, args.quiet)
    for line in problems:
        print(f"problem: {line}", file=sys.stderr)
    if not problems:
        write_readme(manifest, args.dest)
    done = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing"
    if problems:
        print(f"{args.dest}: {len(problems)} of {total} files not verified ({done}); rerun the same command "
              "to retry (verified files are kept)")
        return 1
    print(f"{args.dest}: all {total} files verified ({done}); run the tests with "
          f"CGDDI_SHARED_DATA={args.dest} python -m pytest" if args.dest != DEFAULT_DEST else
          f"{args.dest}: all {total} files verified ({done})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
