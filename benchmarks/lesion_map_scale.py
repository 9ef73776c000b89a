"""v1.1's every-pair lesion-map plan at scale, beside the budgeted plan of the same size: a whole build each.

Run: nice -n 10 python benchmarks/lesion_map_scale.py [--candidates 5000 20000] [--plans all balanced]
     [--budget MAPS ...]

For each size, the demo source is grown to n photos (`source.demo_count`, n = the square root of the size,
rounded up) so that the every-pair plan (`lesion_map.pairing: all`, `budget: null`, v1.1 = the paper)
holds about that many candidates (kept healthy bases x donors); the budgeted plan (`pairing: balanced`)
is then built from the same source with `budget` = the every-pair plan's lesion-map count (or, with
`--plans balanced --budget`, the map count of an every-pair build measured in an earlier run, so the
every-pair build is not repeated only to learn its size). Each build is a
fresh `python -m builder build` (subprocess) through the toolkit's own steps (ingest, healthy with the
CPU stand-in, lesion_map, curate, publish). Measured: wall time, CPU seconds of the build and its workers
(sampled per process: less sensitive to a shared machine's load than wall time), the lesion_map
step's own wall seconds (runs.jsonl; "rest" = the curate and publish steps plus start-up), peak RSS of the
build and its workers together (psutil, every 0.1 s), and disk (the published version, the work folder).
The projection to the paper's release (DDI: 309 kept bases x 334 donors = 103,206 candidates) scales the
largest measured every-pair build linearly by its per-candidate rates: a projection, not a measurement.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


PAPER_CANDIDATES = 309 * 334  # DDI: kept healthy bases x lesion donors in the paper's release


def disk_mib(folder: Path) -> float:
    """Bytes of the files under `folder` (hard links counted once), in MiB."""
    seen, total = set(), 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total / 2 ** 20


def tree_usage(proc: subprocess.Popen) -> tuple[float, float, float]:
    """(wall seconds, peak summed RSS in MiB, CPU seconds) of a process tree while it runs, sampled every
    0.1 s: each process's CPU time is its last sample (a worker's last 0.1 s can be missed)."""
    import time

    import psutil

    root, peak, cpu, t0 = psutil.Process(proc.pid), 0, {}, time.perf_counter()
    while proc.poll() is None:
        try:
            tree = [root] + root.children(recursive=True)
        except psutil.Error:
            tree = []
        total = 0
        for p in tree:
            try:
                total += p.memory_info().rss
                t = p.cpu_times()
                cpu[p.pid] = t.user + t.system
            except psutil.Error:
                pass
        peak = max(peak, total)
        time.sleep(0.1)
    return time.perf_counter() - t0, peak / 2 ** 20, sum(cpu.values())


def snapshot(work: Path) -> Path:
    """A copy of the toolkit's code as it is now, which every build of this run imports: a build lasts hours
    and imports some modules late (the card's at publish), so code edited meanwhile in the checkout must not
    mix into it (a 103k build once failed at its card after 2 hours that way)."""
    import shutil

    code = work / "code"
    shutil.copytree(ROOT, code, ignore=shutil.ignore_patterns(".git", "out", "__pycache__", "*.pyc", ".pytest_cache"))
    return code


def build(photos: int, pairing: str, budget: int | None, workers: int, work: Path) -> dict:
    """One build of v1.1 from a demo source of `photos` photos with the given plan (the code of `work`'s
    snapshot); its measurements. A failed build still prints what it had measured before it stops."""
    import yaml

    code = work / "code"
    raw = yaml.safe_load((code / "builder" / "configs" / "1.1.yaml").read_text())
    raw["source"]["demo_count"] = photos
    raw["lesion_map"].update(pairing=pairing, budget=budget)
    name = f"{pairing}-{photos}"
    cfg = work / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    out = work / f"out-{name}"
    env = {**os.environ, "PYTHONPATH": str(code), "CGDDI_PROGRESS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "builder", "-q", "build", "--version", str(cfg), "--out", str(out),
                             "--workers", str(workers)], env=env, cwd=code, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seconds, rss, cpu = tree_usage(proc)
    log = proc.stdout.read()
    if proc.returncode:
        print(json.dumps({"plan": pairing, "photos": photos, "failed": True, "seconds": round(seconds, 1),
                          "cpu_seconds": round(cpu, 1), "peak_rss_mib": round(rss)}), flush=True)
        raise SystemExit(f"build {name} failed:\n{log[-3000:]}")
    work_dir = out / ".work" / "1.1"
    run = [json.loads(line) for line in (work_dir / "runs.jsonl").read_text().splitlines()][-1]
    stages = {s["stage"]: s for s in run["stages"]}
    lm = stages["lesion_map"]
    version = next(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    rows = sum(f["rows"] for f in json.loads((version / "manifest.json").read_text())["files"] if "config" in f)
    before = sum(stages[s].get("seconds") or 0.0 for s in ("ingest", "healthy"))
    return {"plan": "every pair" if pairing == "all" else "budgeted", "photos": photos,
            "candidates": lm.get("delivery", {}).get("planned", lm["done"]),
            "lesion_maps": lm["done"], "rows": rows, "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1),
            "lesion_map_seconds": round(lm["seconds"], 1),
            "rest_seconds": round(seconds - lm["seconds"] - before, 1),
            "peak_rss_mib": round(rss), "version_mib": round(disk_mib(version)),
            "work_mib": round(disk_mib(out / ".work"))}


def clear(tmp: Path) -> None:
    """Remove the builds' outputs (each is measured before; at 103k candidates one is ~25 GB)."""
    for d in tmp.glob("out-*"):
        subprocess.run(["rm", "-rf", str(d)], check=True)


def projection(run: dict) -> dict:
    """The largest every-pair build scaled to the paper's candidate count by its per-candidate rates."""
    k = PAPER_CANDIDATES / run["candidates"]
    return {"candidates": PAPER_CANDIDATES, "from_candidates": run["candidates"],
            "hours": round((run["seconds"] * k) / 3600, 2), "cpu_hours": round(run["cpu_seconds"] * k / 3600, 2),
            "version_gib": round(run["version_mib"] * k / 1024, 1), "work_gib": round(run["work_mib"] * k / 1024, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--candidates", type=int, nargs="+", default=[5000, 20000],
                   help="about how many every-pair candidates per size (the source grows to sqrt of it)")
    p.add_argument("--plans", nargs="+", choices=["all", "balanced"], default=["all", "balanced"],
                   help="all: every pair (v1.1); balanced: the budgeted plan of the same size")
    p.add_argument("--budget", type=int, nargs="+",
                   help="with --plans balanced: the budgeted plan's budget per size (an earlier every-pair "
                        "build's lesion-map count), so the every-pair build is skipped")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    if args.budget is not None and (args.plans != ["balanced"] or len(args.budget) != len(args.candidates)):
        p.error(f"--budget {args.budget} needs --plans balanced and one budget per --candidates size "
                f"({len(args.candidates)}); leave --budget out to measure the every-pair build first")
    runs = []
    with tempfile.TemporaryDirectory(prefix="cgddi-lmscale-") as tmp:
        snapshot(Path(tmp))
        for i, size in enumerate(args.candidates):
            photos = math.isqrt(size - 1) + 1
            # the every-pair build comes first (the budgeted plan takes its map count as its budget) unless
            # that count is given; each run is printed as soon as it is measured
            if args.budget is not None:
                budget = args.budget[i]
            else:
                every = build(photos, "all", None, args.workers, Path(tmp))
                clear(Path(tmp))  # measured: the disk holds one build at a time
                budget = every["lesion_maps"]
                if "all" in args.plans:
                    runs.append(every)
                    print(json.dumps(every), flush=True)
            if "balanced" in args.plans:
                runs.append(build(photos, "balanced", budget, args.workers, Path(tmp)))
                clear(Path(tmp))
                print(json.dumps(runs[-1]), flush=True)
    print(f"build --version 1.1 from the demo source, {args.workers} workers, {os.cpu_count()} cores "
          "(shared machine: wall times include other load)")
    print(f"{'plan':>10} {'photos':>6} {'candidates':>10} {'maps':>7} {'rows':>7} {'seconds':>8} {'CPU s':>8} "
          f"{'CPU s/1k rows':>13} {'lesion_map s':>12} {'rest s':>7} {'peak RSS MiB':>12} {'version MiB':>11} "
          f"{'work MiB':>9}")
    for r in runs:
        print(f"{r['plan']:>10} {r['photos']:>6} {r['candidates']:>10} {r['lesion_maps']:>7} {r['rows']:>7} "
              f"{r['seconds']:>8.1f} {r['cpu_seconds']:>8.1f} {1000 * r['cpu_seconds'] / r['rows']:>13.1f} "
              f"{r['lesion_map_seconds']:>12.1f} {r['rest_seconds']:>7.1f} {r['peak_rss_mib']:>12} "
              f"{r['version_mib']:>11} {r['work_mib']:>9}")
    every = [r for r in runs if r["plan"] == "every pair"]
    proj = projection(max(every, key=lambda r: r["candidates"])) if every else None
    if proj:
        print(f"projection (not measured) to the paper's {PAPER_CANDIDATES:,} candidates from the "
              f"{proj['from_candidates']:,}-candidate build: ~{proj['hours']} h wall at this run's load "
              f"(~{proj['cpu_hours']} CPU hours), version ~{proj['version_gib']} GiB, "
              f"work folder ~{proj['work_gib']} GiB")
    print(json.dumps({"runs": runs, "projection": proj, "workers": args.workers}))


if __name__ == "__main__":
    main()
