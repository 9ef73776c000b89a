"""Build scaling: a whole `build` at three sizes from the demo source, seconds per 1k rows and peak RSS.

Run: python benchmarks/scale.py [--budgets 1000 5000 20000] [--version 1.2] [--workers 2]

Each size is a fresh `python -m builder build` (subprocess) of the version's config with only
`lesion_map.budget` raised (the demo source's 36 photos give 36 healthy rows; every other row is a
lesion map). Peak RSS is sampled every 0.1 s over the build process and all its workers together
(psutil), so it includes the worker pool. Flat seconds per 1k rows and flat RSS mean linear
scaling. The smallest build is the baseline each larger one is compared with; the marginal
columns are the cost of the rows a build adds over the previous size (what a larger build pays per
row once the fixed start-up cost is paid), and the projection to 266k rows (the paper's release)
uses the marginal rate of the largest step on the same cores.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def peak_rss(proc: subprocess.Popen) -> tuple[float, float]:
    """(seconds, peak summed RSS in MiB of the process tree) while it runs."""
    import psutil

    root, peak, t0 = psutil.Process(proc.pid), 0, time.perf_counter()
    while proc.poll() is None:
        try:
            tree = [root] + root.children(recursive=True)
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.1)
    return time.perf_counter() - t0, peak / 2 ** 20


def build(version: str, budget: int, workers: int, work: Path) -> dict:
    import yaml

    raw = yaml.safe_load((ROOT / "builder" / "configs" / f"{version}.yaml").read_text())
    raw["lesion_map"]["budget"] = budget
    cfg = work / f"scale-{budget}.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CGDDI_PROGRESS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "builder", "-q", "build", "--version", str(cfg), "--out",
                             str(work / f"out-{budget}"), "--workers", str(workers)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds, rss = peak_rss(proc)
    out = proc.stdout.read()
    if proc.returncode:
        raise SystemExit(f"build of {budget} lesion maps failed:\n{out[-3000:]}")
    rows = int(next(line.split(":")[1].split()[0] for line in out.splitlines() if line.startswith("built cgDDI")))
    return {"budget": budget, "rows": rows, "seconds": seconds, "rss_mib": rss}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budgets", type=int, nargs=3, default=[1000, 5000, 20000])
    p.add_argument("--version", default="1.2")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="cgddi-scale-") as tmp:
        runs = [build(args.version, b, args.workers, Path(tmp)) for b in args.budgets]
    print(f"build --version {args.version} from the demo source, {args.workers} workers, {os.cpu_count()} cores "
          "(shared machine: wall times include other load)")
    print(f"{'lesion maps':>11} {'rows':>7} {'seconds':>8} {'s per 1k rows':>14} {'marginal s/1k':>14} "
          f"{'peak RSS MiB':>13} {'marginal MiB/1k':>16}")
    per = [1000 * r["seconds"] / r["rows"] for r in runs]
    marg_t, marg_m = [None], [None]
    for prev, r in zip(runs, runs[1:]):
        marg_t.append(1000 * (r["seconds"] - prev["seconds"]) / (r["rows"] - prev["rows"]))
        marg_m.append(1000 * (r["rss_mib"] - prev["rss_mib"]) / (r["rows"] - prev["rows"]))
    for r, p_k, mt, mm in zip(runs, per, marg_t, marg_m):
        print(f"{r['budget']:>11} {r['rows']:>7} {r['seconds']:>8.1f} {p_k:>14.1f} "
              f"{'-' if mt is None else f'{mt:.1f}':>14} {r['rss_mib']:>13.0f} "
              f"{'-' if mm is None else f'{mm:.1f}':>16}")
    last = runs[-1]
    hours = (last["seconds"] + (266_000 - last["rows"]) * marg_t[-1] / 1000) / 3600
    rss = last["rss_mib"] + (266_000 - last["rows"]) * max(marg_m[-1], 0.0) / 1000
    print(f"projection to 266,000 rows at the last step's marginal rates: {hours:.1f} h, peak RSS ~{rss:.0f} MiB")
    print(json.dumps({"rows": [r["rows"] for r in runs], "seconds_per_1k_rows": [round(v, 2) for v in per],
                      "marginal_seconds_per_1k_rows": [round(v, 2) for v in marg_t[1:]],
                      "peak_rss_mib": [round(r["rss_mib"]) for r in runs],
                      "marginal_rss_mib_per_1k_rows": [round(v, 2) for v in marg_m[1:]],
                      "time_per_1k_ratio_largest_vs_smallest": round(per[-1] / per[0], 3),
                      "rss_ratio_largest_vs_smallest": round(runs[-1]["rss_mib"] / runs[0]["rss_mib"], 3),
                      "projected_hours_266k_rows": round(hours, 2), "projected_peak_rss_mib_266k_rows": round(rss),
                      "workers": args.workers}))

if __name__ == "__main__":
    main()
