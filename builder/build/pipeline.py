"""The build: source -> healthy -> lesion-mapped (+ semantic) -> curation -> shards + card + manifest -> load-back check."""
from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from pathlib import Path

from builder.core.config import BuildConfig
from builder.core.errors import ConfigError
from builder.core.schema import KINDS, SKIN_TONES, SPLITS, Record

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    """Operational settings only (content lives in the versioned config)."""

    out: Path = Path("out")
    source: Path | tuple[Path, ...] | None = None  # several: one build over all of them (`source_inputs`)
    masks: Path | tuple[Path | None, ...] | None = None  # several sources: none, or one per source in order
    source_name: str | tuple[str | None, ...] | None = None  # id prefix; default: the source's layout
    #                                                     (ddi, fitz17k), or demo; several: as masks
    device: str = "cpu"
    workers: int | None = None  # None: all cores
    overwrite: bool = False
    limit: int | None = None
    decisions: Path | None = None  # a review's decisions CSV (`review`): discarded items are left out
    stand_in: bool = False  # run the version's CPU stand-in healthy generator on a --source (the demo always does)


@dataclasses.dataclass
class BuildResult:
    out_dir: Path
    records: list[Record]
    files: list[dict]
    stages: list[dict]
    decisions: dict[str, str] = dataclasses.field(default_factory=dict)  # stage -> reused / rerun because ...

    def table(self) -> str:
        """Rows per kind x split x skin tone, as a fixed-width text table."""
        counts = Counter((r.kind, r.split, r.skin_tone) for r in self.records)
        head = f"{'kind':<14}{'split':<12}" + "".join(f"{t:>8}" for t in SKIN_TONES) + f"{'total':>8}"
        lines = [head, "-" * len(head)]
        for kind in KINDS:
            for split in SPLITS:
                row = [counts[(kind, split, t)] for t in SKIN_TONES]
                if any(row):
                    lines.append(f"{kind:<14}{split:<12}" + "".join(f"{n:>8}" for n in row) + f"{sum(row):>8}")
        lines.append(f"{'total':<26}" + "".join(
            f"{sum(v for (k, s, t), v in counts.items() if t == tone):>8}" for tone in SKIN_TONES)
            + f"{len(self.records):>8}")
        return "\n".join(lines)


def check_inputs(cfg: BuildConfig, opts: BuildOptions) -> None:
    """Fail on bad options or settings of any stage before any work starts."""
    if opts.device not in ("cpu", "cuda") and not opts.device.startswith("cuda:"):
        raise ConfigError(f"--device {opts.device!r}: expected cpu, cuda or cuda:N")
    if opts.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {opts.device} asked for, but torch sees no CUDA device; use --device cpu")
    if opts.source is None and cfg.source.name != "demo":
        raise ConfigError(f"version {cfg.version} uses source {cfg.source.name!r}: pass --source DIR (and --masks DIR)")
    if opts.source_name is not None and opts.source is None:
        raise ConfigError(f"--source-name {opts.source_name} names a --source folder; the embedded demo "
                          "source is always 'demo'")
    from builder.build.steps import source_inputs

    inputs = source_inputs(opts)
    for given in inputs:
        if not given.folder.is_dir():
            raise ConfigError(f"--source {given.folder} is not a folder")
        if given.name is not None:
            from curation.source.metadata import check_source_name

            check_source_name(given.name)
    if len(inputs) > 1:
        _check_distinct_names(inputs)
    if opts.decisions is not None:  # a bad row fails here, before any work
        from builder.build.review import load

        load(Path(opts.decisions))
    from builder.build.steps import check_steps

    check_steps(cfg, opts.device)



def _check_distinct_names(inputs: list) -> None:
    """Several sources need distinct id prefixes (a source's default name is its layout), checked before any work."""
    from curation.source.metadata import find_table

    seen: dict[str, Path] = {}
    for given in inputs:
        name = given.name or find_table(given.folder)[0]
        if name in seen:
            raise ConfigError(f"--source {seen[name]} and --source {given.folder} are both named {name!r}: their "
                              f"ids ({name}:<stem>) would mix; give each --source its own --source-name, in order")
        seen[name] = given.folder


def build(cfg: BuildConfig, opts: BuildOptions) -> BuildResult:
    """Run every step of a version (`builder.build.steps.STEPS`) into `<out>/<version>/` (publishable)
    and `<out>/.work/<version>/` (the steps' stores; `builder.core.layout`).

    Every step's outputs are keyed by the fingerprints of its inputs (`builder.core.stage`): a rerun
    reuses what still matches, reruns exactly the steps whose source or settings changed, and logs
    which (`[stage] ...; reused` / `; rerun because X changed`). The run holds the work folder's lock
    (a second build of the version into the same --out refuses, naming this one) and appends its
    statistics to `<work>/runs.jsonl`; the manifest holds content only."""
    from builder.build.guards import guard_existing
    from builder.build.steps import BuildContext, run_steps
    from builder.core.layout import VersionLayout
    from builder.core.lock import hold
    from builder.core.runlog import RunLog

    cfg, stand_in = apply_stand_in(cfg, opts)
    check_inputs(cfg, opts)
    layout = VersionLayout(Path(opts.out), cfg.version).check_no_links()  # a name, never a path; no links out
    with hold(layout.work, command=f"build --version {cfg.version}") as holder, \
            RunLog(layout.work, holder, opts) as run:
        guard_existing(layout.version_dir, cfg, opts.overwrite)  # before the work folder changes
        ctx = BuildContext(cfg, opts, layout, stand_in=stand_in)
        run_steps(ctx)
        run.stages = ctx.stages
        return BuildResult(layout.version_dir, ctx.curated.records, ctx.files, ctx.stages, ctx.decisions)


def apply_stand_in(cfg: BuildConfig, opts: BuildOptions) -> tuple[BuildConfig, dict | None]:
    """The config a build runs, and what stood in for what (None: the version's own generators ran).

    A version whose healthy generator needs weights and a GPU (the paper's Kandinsky 2.2) names a CPU
    stand-in (`healthy.stand_in`). The embedded demo source always uses it (the default build must run
    anywhere); a --source uses it only when asked (`--cpu-stand-in`). The stand-in's backend is then the
    config's, so the config hash, the build's fingerprint, every row's `generator` and the card differ
    from a build with the real generator: one version tag never names two contents."""
    h = cfg.healthy
    if not (opts.stand_in or (opts.source is None and h.stand_in is not None)):
        return cfg, None
    if h.stand_in is None:
        raise ConfigError(f"--cpu-stand-in: version {cfg.version} names no CPU stand-in for its healthy generator "
                          f"{h.backend!r} (healthy.stand_in is null); build without --cpu-stand-in")
    if h.stand_in == h.backend:
        return cfg, None
    used = dataclasses.replace(cfg, healthy=dataclasses.replace(h, backend=h.stand_in))
    why = "the embedded demo source (no model weights there)" if opts.source is None else "--cpu-stand-in"
    return used, {"healthy": {"configured": h.backend, "model_id": h.model_id, "used": h.stand_in, "why": why}}

