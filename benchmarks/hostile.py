"""Hostile inputs: the audit's peak memory on a decompression-bomb shard, and ingest time on a table whose
rows all name one photo.

Run: `python benchmarks/hostile.py --folder out/1.1 [--rows 10000 100000] [--bomb-mb 1500]`. The bomb is
a copy of `--folder` whose first healthy train shard is replaced by one row whose image is `--bomb-mb` MB
of zeros (zstd: ~60 KB on disk), listed in the manifest so that only the content is hostile; the audit
runs in its own process (peak RSS: that process's own VmHWM, Linux). Ingest times `plan_ingest` (the table read and
checked, files fingerprinted) on a DDI folder with one photo and N rows naming it, in its own process.
The last line is one JSON object of headline figures.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def plant_bomb(folder: Path, mb: int) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from builder.build.manifest import relist_files

    rel = sorted(p.relative_to(folder).as_posix() for p in (folder / "data" / "healthy").glob("train-*.parquet"))[0]
    table = pq.read_table(folder / rel).slice(0, 1)
    img = table.column("image").combine_chunks()
    bomb = pa.StructArray.from_arrays([pa.array([bytes(mb * 10**6)], pa.binary()), img.field("path")],
                                      fields=list(img.type))
    table = table.set_column(table.schema.get_field_index("image"), table.schema.field("image"), bomb)
    pq.write_table(table, folder / rel, compression="zstd", use_dictionary=False)
    relist_files(folder, [rel])
    return rel


def audit_peak(folder: Path) -> tuple[int, float, int]:
    """(exit code, seconds, peak RSS in MiB) of the audit CLI on `folder`, in a process of its own."""
    # VmHWM: this process's own peak (ru_maxrss would carry the parent's peak across fork + exec)
    code = ("from builder.cli import main\n"
            f"rc = main(['-q', 'audit', {str(folder)!r}, '--report', {str(folder.parent / 'audit.json')!r}])\n"
            "hwm = next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
            "print('PEAK', hwm, rc)")
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                       capture_output=True, text=True)
    line = next(x for x in p.stdout.splitlines() if x.startswith("PEAK"))
    _, kib, rc = line.split()
    return int(rc), time.perf_counter() - t, int(kib) // 1024


def ingest_seconds(n: int) -> float:
    code = f"""
import time, numpy as np
from pathlib import Path
from builder.core.store import encode_png
from curation.source.ingest import plan_ingest
src = Path({str(tempfile.mkdtemp())!r})
(src / "000001.png").write_bytes(encode_png(np.full((64, 64, 3), 128, np.uint8)))
rows = "".join(f"{{i}},000001.png,12,FALSE,melanoma-in-situ\\n" for i in range(1, {n} + 1))
(src / "ddi_metadata.csv").write_text("DDI_ID,DDI_file,skin_tone,malignant,disease\\n" + rows)
t = time.perf_counter()
plan = plan_ingest(src, None)
assert len(plan.table.rows) == 1 and len(plan.table.rejections) == {n} - 1
print(time.perf_counter() - t)
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folder", type=Path, required=True, help="a built version folder (e.g. out/1.1)")
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--bomb-mb", type=int, default=1500)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cgddi-hostile-"))
    clean = work / "clean" / args.folder.name
    shutil.copytree(args.folder, clean)
    bomb = work / "bomb" / args.folder.name
    shutil.copytree(args.folder, bomb)
    rel = plant_bomb(bomb, args.bomb_mb)
    rc_clean, s_clean, mib_clean = audit_peak(clean)
    rc_bomb, s_bomb, mib_bomb = audit_peak(bomb)
    print(f"{'audit of':<34}{'exit':>6}{'seconds':>10}{'peak MiB':>10}")
    print(f"{'the clean version':<34}{rc_clean:>6}{s_clean:>10.1f}{mib_clean:>10}")
    print(f"{f'{args.bomb_mb} MB bomb ({(bomb / rel).stat().st_size // 1024} KB file)':<34}"
          f"{rc_bomb:>6}{s_bomb:>10.1f}{mib_bomb:>10}")
    ingest = {n: ingest_seconds(n) for n in args.rows}
    print(f"\n{'rows naming one photo':<24}{'plan_ingest s':>14}{'us per row':>12}")
    for n, s in ingest.items():
        print(f"{n:<24}{s:>14.2f}{s / n * 1e6:>12.0f}")
    print(json.dumps({"audit_clean_peak_mib": mib_clean, "audit_bomb_peak_mib": mib_bomb, "audit_bomb_exit": rc_bomb,
                      "ingest_seconds": {str(n): round(s, 2) for n, s in ingest.items()}}))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
