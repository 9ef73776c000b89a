"""Cross-source directions: which (donor or disease source, base or prompt source) pairs a build over
several sources may make (`lesion_map.cross_source`, `semantic.cross_source`). A source is an id prefix
(`ddi:000012` -> `ddi`)."""
from __future__ import annotations

import re

from builder.core.errors import ConfigError

CROSS_SOURCES = ("any", "within", "across")  # or "<donor source>-><base source>", e.g. ddi->fitz17k
_DIRECTED = re.compile(r"[a-z0-9][a-z0-9_-]*->[a-z0-9][a-z0-9_-]*")


def source_of(source_id: str) -> str:
    """The source of a source id: its prefix (`ddi:000012` -> `ddi`)."""
    return source_id.split(":", 1)[0]


def check_cross_source(value, where: str) -> None:
    """`any`, `within`, `across` or `DONOR->BASE`; else a ConfigError naming `where` and the choices."""
    if value in CROSS_SOURCES or (isinstance(value, str) and _DIRECTED.fullmatch(value)):
        return
    raise ConfigError(f"{where}={value!r}: expected any (pairs regardless of source), within (one source), "
                      "across (two sources, both ways) or DONOR->BASE (lesions or diseases of source DONOR onto "
                      "bases or healthy prompts of source BASE, e.g. ddi->fitz17k)")


def allows(cross_source: str, donor: str, base: str) -> bool:
    """Whether `cross_source` allows lesions or diseases of source `donor` onto skin of source `base`."""
    if cross_source == "any":
        return True
    if cross_source == "within":
        return donor == base
    if cross_source == "across":
        return donor != base
    return cross_source == f"{donor}->{base}"


def allowed_directions(cross_source: str, sources) -> list[tuple[str, str]]:
    """The (donor source, base source) directions `cross_source` allows among `sources`, sorted."""
    return [(d, b) for d in sorted(sources) for b in sorted(sources) if allows(cross_source, d, b)]
