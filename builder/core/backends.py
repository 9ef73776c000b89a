"""One backend contract per kind of model, and the one registry of backends.

A backend is a class (subclass of `Backend`) in a stage package; the registry maps
`(kind, name)` to its dotted path `"module:Class"` and imports it only when asked, so builder.core
imports no stage package and `--help` stays fast. Adding a backend is one new class and one
registry line: config validation, the commands' `--backend` choices, the stage and the card all
look it up here.

Kinds (`KINDS`) and what the stage asks of an instance `cls(cfg_section, device)`:

- `inpainting` (healthy.backend): `window(job)`, `params()`, `generate(jobs)`, and the attributes
  `model_id`, `revision`, `identity` (generation.healthy.stage);
- `mask` (masks.backend): `method`, `version`, `segment(rgb)`; with `fits_on_hand_masks`, also
  `fit(pairs)` (curation.source.automasks.run);
- `sampling` (the semantic stage; its section has no backend setting, so its one backend is the
  kind's default): `pin(cfg)` and the pipeline loader (generation.semantic);
- `embedding` (curation.embedding_model; likewise): `embed(paths)` (curation.embed).

The semantic and curation sections get a backend setting only when a second backend of their kind
arrives: a new config field changes every version's config hash (and so every manifest).
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, ClassVar

from builder.core.errors import ConfigError


class Backend:
    """The contract. Class attributes and classmethods answer before any model loads; the stage
    constructs the backend (`cls(cfg, device)`) once per process, only when there is work."""

    kind: ClassVar[str] = ""                 # a key of KINDS
    name: ClassVar[str] = ""                 # its registry name, the value of the config's backend setting
    settings: ClassVar[tuple[str, ...]] = ()  # fields of the kind's config section that only it reads
    tags: ClassVar[tuple[str, ...]] = ()     # Hub tags its rows add to the card (e.g. its library)
    prompted: ClassVar[bool] = False         # its rows are generated from the prompt they carry

    @classmethod
    def check(cls, cfg) -> None:
        """Raise ConfigError naming the bad value and the fix, before any image is read or model loaded."""

    @classmethod
    def fingerprint(cls, cfg, **run) -> dict[str, Any]:
        """What changes its outputs beyond the config section the stage key already holds whole
        (e.g. the batch size of a batched diffusion pipeline); merged into the stage key's settings."""
        return {}

    @classmethod
    def uses_seed(cls, cfg) -> bool:
        """Whether its outputs depend on the per-sample seed (a sample id then includes the seed)."""
        return True

    @classmethod
    def card_text(cls, cfg) -> str:
        """The sentence (a clause) the dataset card uses to describe this generator."""
        return f"backend `{cls.name}`"


@dataclasses.dataclass(frozen=True)
class Kind:
    section: str               # the config section its backends read
    setting: str | None        # that section's field naming the backend; None: always `default`
    default: str
    record_kind: str | None    # the Record kind of the rows it makes; None: it makes no rows


KINDS = {
    "inpainting": Kind("healthy", "backend", "opencv", "healthy"),
    "mask": Kind("masks", "backend", "cpu", None),
    "sampling": Kind("semantic", None, "diffusers", "semantic"),
    "embedding": Kind("curation", None, "transformers", None),
}

REGISTRY: dict[tuple[str, str], str] = {
    ("inpainting", "opencv"): "generation.healthy.backends:OpenCVBackend",
    ("inpainting", "diffusers"): "generation.healthy.backends:DiffusersBackend",
    ("inpainting", "kandinsky22"): "generation.healthy.kandinsky:KandinskyBackend",
    ("mask", "cpu"): "curation.source.automasks.cpu:CpuBackend",
    ("mask", "learned"): "curation.source.automasks.learned:LearnedBackend",
    ("mask", "sam3"): "curation.source.automasks.sam3:Sam3Backend",
    ("sampling", "diffusers"): "generation.semantic.trainer:DiffusersSampler",
    ("embedding", "transformers"): "curation.embed:TransformersEmbedder",
}


def names(kind: str) -> tuple[str, ...]:
    """Registered backend names of `kind`, in registry order."""
    if kind not in KINDS:
        raise ValueError(f"backend kind {kind!r} is not one of {list(KINDS)}")
    return tuple(n for k, n in REGISTRY if k == kind)


def where(kind: str) -> str:
    """The config setting that names a backend of `kind` (e.g. `healthy.backend`)."""
    k = KINDS[kind]
    return f"{k.section}.{k.setting}" if k.setting else f"{k.section} ({kind} backend)"


def check_name(kind: str, name: str) -> None:
    """Refuse a backend name the registry does not hold, listing the registered ones."""
    if (kind, name) not in REGISTRY:
        raise ConfigError(f"{where(kind)}={name!r} is not a registered {kind} backend; use one of "
                          f"{', '.join(names(kind))}")


def configured(kind: str, section) -> str:
    """The backend name a config section selects for `kind`."""
    k = KINDS[kind]
    return getattr(section, k.setting) if k.setting else k.default


def backend_class(kind: str, name: str) -> type[Backend]:
    """Import and return the registered class of (kind, name); an unknown name is a ConfigError."""
    check_name(kind, name)
    module, _, cls = REGISTRY[kind, name].partition(":")
    return getattr(importlib.import_module(module), cls)


def backend_for(kind: str, section) -> type[Backend]:
    """The class the config section selects (e.g. `backend_for("inpainting", cfg.healthy)`)."""
    return backend_class(kind, configured(kind, section))


def check_config(cfg) -> None:
    """Every backend setting of a BuildConfig names a registered backend (no import: names only)."""
    for kind, k in KINDS.items():
        if k.setting:
            check_name(kind, getattr(getattr(cfg, k.section), k.setting))


def model_backend(kind: str, current: str | None = None) -> str:
    """The backend `--model` without `--backend` selects: `current` (the config's) if it loads a model,
    else the first registered backend of `kind` that does."""
    for name in ((current,) if current in names(kind) else ()) + names(kind):
        if "model_id" in backend_class(kind, name).settings:
            return name
    raise ConfigError(f"no registered {kind} backend takes a model; registered: {', '.join(names(kind))}")


@dataclasses.dataclass(frozen=True)
class CardEntry:
    """What the dataset card says about one generator (the build passes these to cards/)."""

    text: str
    settings: tuple[str, ...]
    tags: tuple[str, ...]
    prompted: bool


def card_entries(cfg) -> dict[tuple[str, str], CardEntry]:
    """(record kind, backend name) -> CardEntry, for every registered backend that makes rows."""
    out = {}
    for (kind, name) in REGISTRY:
        k = KINDS[kind]
        if k.record_kind:
            cls = backend_class(kind, name)
            section = getattr(cfg, k.section)
            out[k.record_kind, name] = CardEntry(cls.card_text(section), cls.settings, cls.tags, cls.prompted)
    return out
