"""Build a version: the ordered steps (`pipeline`), then its Hub-layout shards, manifest and load-back check.

Python use (a plain script, a notebook or `python -`; no `if __name__ == "__main__":` needed, the
worker processes never re-run the caller's script):

    from builder.build import build

    result = build("1.1", out="out")                                   # the embedded demo source
    result = build("1.1", out="out", source="/data/ddi", masks="/data/ddi/masks", workers=4)
    result = build("1.2", out="out", source=["/data/ddi", "/data/fitz17k"])  # two sources, one build
    print(result.out_dir, len(result.records))
    print(result.table())                                              # rows per kind x split x tone

`build(cfg, BuildOptions(...))` with a loaded config (`builder.core.config.load_config`) works as
before. The library logs (`logging`, logger names `builder.*`, `curation.*`, `generation.*`) and
never prints; errors are `builder.core.errors` exceptions whose message names the fix.
"""
from __future__ import annotations

from pathlib import Path

from builder.build.pipeline import BuildOptions, BuildResult
from builder.build.pipeline import build as _build_config

__all__ = ["BuildOptions", "BuildResult", "build"]


def build(version="1.1", opts: BuildOptions | None = None, /, **options) -> BuildResult:
    """Build `version` (a config name such as "1.1", a config file, or a loaded `BuildConfig`) into
    `<out>/<version>/`. Options are `BuildOptions`' fields as keywords (out, source, masks,
    source_name, device, workers, overwrite, limit), or one `BuildOptions`."""
    from builder.core.config import load_config
    from builder.core.errors import ConfigError

    if opts is not None and options:
        raise ConfigError(f"build(): pass a BuildOptions or keyword options, not both (got {sorted(options)})")
    unknown = sorted(set(options) - set(BuildOptions.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"build(): unknown options {unknown}; expected {sorted(BuildOptions.__dataclass_fields__)}")
    for key in ("out", "source", "masks"):  # source, masks: one folder, or a list (several sources)
        value = options.get(key)
        if isinstance(value, (list, tuple)):
            options[key] = tuple(Path(v) if v is not None else None for v in value)
        elif value is not None:
            options[key] = Path(value)
    if isinstance(options.get("source_name"), list):
        options["source_name"] = tuple(options["source_name"])
    cfg = load_config(version) if isinstance(version, (str, Path)) else version
    return _build_config(cfg, opts or BuildOptions(**options))
