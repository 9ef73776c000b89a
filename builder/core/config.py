"""Versioned build configs: `builder/configs/<version>.yaml` fixes every content setting, strictly parsed."""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any

from builder.core.backends import check_config as check_backend_names
from builder.core.errors import ConfigError

CONFIG_DIR = Path(__file__).parents[1] / "configs"


@dataclasses.dataclass(frozen=True)
class SourceConfig:
    name: str = "demo"
    demo_count: int = 36
    demo_seed: int = 20261125
    min_side_px: int = 64  # smaller photos are rejected `image_too_small` (why 64: curation/source/images.py)
    subset: str = "all"    # all | expert_verified: Fitzpatrick17k rows whose qc is 1 Diagnostic or 2 Characteristic
    #                        (the others are rejected `not_in_subset`; curation/source/metadata.py)


@dataclasses.dataclass(frozen=True)
class HealthyConfig:
    backend: str = "opencv"
    model_id: str | None = None
    revision: str | None = None
    prompt: str = "An image of healthy skin on a {tone}-skinned individual"
    include_marker: bool = True
    dilate_px: int = 3
    feather_px: int = 2
    rim_px: int = 0              # 0: none | grow the region over a perilesional rim up to this many px (v1.2)
    steps: int = 30
    guidance: float = 7.5
    seed: int = 0
    dtype: str = "auto"          # auto (fp16 on CUDA, fp32 on CPU) | float32 | float16 | bfloat16
    crop_size: int = 512         # model window around the region; large photos are not downscaled
    opencv_radius: int = 5       # cv2.inpaint neighbourhood (opencv backend)
    opencv_grain: float = 1.0    # seeded skin grain over the Telea fill (0 = smooth fill)
    opencv_method: str = "telea"  # telea (+ grain; v1.1) | exemplar (membrane colour + nearby skin texture) | quilt (clean skin)
    # kandinsky22 backend (Kandinsky 2.2 inpainting: prior + decoder); defaults are the paper's
    kandinsky_prompt: str = "A close-up clinical photograph of healthy, smooth, normal human skin"
    kandinsky_negative_prompt: str = ("Bad anatomy, deformed, lesion, ugly, disfigured, illness, hole, "
                                      "transparent, eye")
    prior_model_id: str | None = None  # the prior (Hub id or folder); None: the model folder holds it
    prior_revision: str | None = None  # pinned commit of prior_model_id
    prior_steps: int = 25
    prior_guidance: float = 4.0
    model_mask_dilate: int = 5      # square kernel (px) dilating the mask the model sees (0 = none)
    model_mask_blur: float = 2.0    # Gaussian sigma (px) blurring it after dilation (0 = none)
    stand_in: str | None = None  # CPU backend run instead of `backend` on the embedded demo source or with
    #                              build --cpu-stand-in (the card, manifest and rows then say so); null: none


@dataclasses.dataclass(frozen=True)
class LesionMapConfig:
    budget: int | None = 120          # lesion maps to plan; null with pairing all: every pair
    pairing: str = "balanced"         # balanced (pairs within a split, balanced cells) | all (every base x donor once: the paper)
    working_size: int | None = None   # null: each image at its own size | N: base and donor resized to N x N first (the notebook)
    seed: int = 1
    pads: tuple[int, ...] = (10, 5, 0)
    rotate: bool = True
    dilate_px: int = 1
    feather: float = 1.5
    donor_resize: str = "none"        # none (donor pixels as they are: the method) | base_short_side
    fallbacks: tuple[str, ...] = ("keep_in_place",)  # after pads, in order: downscale, other_base, keep_in_place
    downscales: tuple[float, ...] = (0.8, 0.64, 0.5)  # lesion scales the downscale fallback tries
    blend: str = "alpha"              # alpha (feathered composite: the method) | poisson (no donor-skin halo) | poisson_screen (poisson, bright parts not clipped) | lesion_lab (v1.2: per pixel in Lab, hue kept)
    png_level: int = 6                # zlib level of the lesion-mapped PNGs (lossless at any level; 1 encodes ~3.6x faster, ~5% larger)
    cross_source: str = "any"         # several sources: any | within | across | DONOR->BASE, e.g. ddi->fitz17k
    max_lesion_share: float | None = None  # null: any size (the method) | a pasted lesion covers at most this share of the base's skin
    max_base_lesion: float | None = None   # null: any base (the method) | bases whose lesion was over this share of their skin get no lesion


@dataclasses.dataclass(frozen=True)
class SemanticConfig:
    budget: int = 0
    model_id: str = "stabilityai/stable-diffusion-2-1-base"
    revision: str | None = None
    diseases: tuple[str, ...] = ()  # empty: every joined disease with training images
    include_validation: bool = False
    seed: int = 0
    mixed_precision: str = "fp16"
    init_word: str = "skin"
    ti_steps: int = 500
    ti_lr: float = 5e-4
    ti_scale_lr: bool = True
    ti_resolution: int = 512
    ti_batch: int = 4
    ti_grad_accum: int = 4
    lora_steps: int = 750
    lora_lr: float = 5e-6
    lora_resolution: int = 256
    lora_batch: int = 1
    lora_grad_accum: int = 1
    lora_rank: int = 8
    lora_gradient_checkpointing: bool = False  # recompute UNet activations in backward: less memory
    prior_weight: float = 1.0
    class_images: int = 96
    checkpoint_every: int = 100
    sample_steps: int = 50
    guidance: float = 7.5
    negative_prompt: str = ""
    sampling: str = "text2img"   # text2img | img2img: from healthy synthetics (the paper's "healthy prompts")
    strength: float = 0.725      # img2img: how far from the healthy image (1.0 = from noise)
    cross_source: str = "any"    # img2img over several sources: any | within | across | DISEASES->PROMPTS
    sample_resolution: int = 512
    sample_batch: int = 8
    shard_size: int = 64
    released: tuple[str, ...] = ()  # cgDDI's released per-disease models to sample from instead of training
    #                                 (Hub id@revision or a local folder each; they saw every photo of their disease)


@dataclasses.dataclass(frozen=True)
class CurationConfig:
    split_seed: int = 12140420
    ratios: dict[str, float] = dataclasses.field(default_factory=lambda: {"train": 0.7, "validation": 0.1, "test": 0.2})
    phash_hamming: int = 6
    split_method: str = "stratified"
    test_ids_file: str | None = None
    patchalign24_csv: str | None = None
    embedding_model: str | None = None
    embedding_revision: str | None = None
    embedding_min_cosine: float = 0.95
    leakage_rule: str = "strict"  # strict (nothing derived from a held-out photo is trained on) | paper (the
    #                               paper's: a lesion map's donor, a semantic image's (disease, healthy prompt) pair)


@dataclasses.dataclass(frozen=True)
class PublishConfig:
    shard_mb: float = 500
    include_real: bool = False
    repo_id: str | None = None  # Hub repo named in the card's usage snippet (push --repo-id decides the target)


@dataclasses.dataclass(frozen=True)
class MasksConfig:
    auto: bool = False              # make masks for photos without one (v1.1: off, the paper's inputs)
    backend: str = "cpu"            # cpu (colour contrast + GrabCut, no weights) | learned | sam3
    min_confidence: float = 0.4     # below: the photo is rejected `mask_low_confidence`
    side: int = 256                 # working resolution (longest side, px); masks are written at photo size
    model_id: str | None = None     # learned: vision model (Hub id or folder), e.g. facebook/dinov2-small;
    #                                 sam3: facebook/sam3 or a folder
    revision: str | None = None     # learned, sam3: pinned commit of model_id
    prompt: str = "skin lesion"     # sam3: the text prompt naming what to segment as the lesion
    batch_size: int = 16            # photos per batch: one review contact sheet each, the unit of resume


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    version: str
    source: SourceConfig
    healthy: HealthyConfig
    lesion_map: LesionMapConfig
    semantic: SemanticConfig
    curation: CurationConfig
    publish: PublishConfig
    masks: MasksConfig = MasksConfig()

    def __post_init__(self):
        from builder.core.layout import check_version_name

        check_version_name(self.version)  # a version becomes a folder name: never a path

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def config_hash(self) -> str:
        """Fingerprint of every content setting (goes into the manifest)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


_SECTIONS = {"source": SourceConfig, "healthy": HealthyConfig, "lesion_map": LesionMapConfig,
             "semantic": SemanticConfig, "curation": CurationConfig, "publish": PublishConfig,
             "masks": MasksConfig}


def available_versions() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_config(version_or_path: str) -> BuildConfig:
    """Load `builder/configs/<version>.yaml` (or a YAML path); unknown keys and wrong types are errors."""
    path = Path(version_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = CONFIG_DIR / f"{version_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(f"no build config for version {version_or_path!r} (looked for {path}); "
                          f"available versions: {', '.join(available_versions())}")
    raw = _read_yaml(path)
    unknown = set(raw) - set(_SECTIONS) - {"version"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level keys {sorted(unknown)}{_did_you_mean(unknown, _SECTIONS)}; "
                          f"expected 'version' and {sorted(_SECTIONS)}")
    version = raw.get("version", path.stem)
    if not isinstance(version, str):
        raise ConfigError(f"{path}: version is {_show(version)} ({_describe_value(version)}); expected a string. "
                          f"Fix: quote it, e.g. version: \"{version}\"")
    from builder.core.layout import check_version_name

    try:
        check_version_name(version)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    sections = {}
    for name, cls in _SECTIONS.items():
        values = raw.get(name)
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: {name} is {_show(values)} ({_describe_value(values)}); expected a mapping "
                              f"of settings. Fix: indent its keys under `{name}:` (valid keys: "
                              f"{sorted(f.name for f in dataclasses.fields(cls))})")
        sections[name] = _build_section(path, name, cls, values)
    cfg = BuildConfig(version=version, **sections)
    try:  # backend names come from the one registry (names only: no backend module is imported)
        check_backend_names(cfg)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    return cfg


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} is not valid YAML ({getattr(e, 'problem', None) or e}); "
                          "fix the syntax there") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: byte {e.start} is not UTF-8; save the file as UTF-8") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level is {_describe_value(raw)}; expected a mapping with "
                          f"'version' and the sections {sorted(_SECTIONS)}")
    return raw


def _build_section(path: Path, name: str, cls, values: dict) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise ConfigError(f"{path}: section {name!r} has unknown keys {sorted(unknown)}"
                          f"{_did_you_mean(unknown, fields)}; valid keys: {sorted(fields)}")
    _check_types(path, name, cls, values)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**kwargs)


def _check_types(path: Path, section: str, cls, values: dict) -> None:
    """Every value must already have its field's type (strict: no "120" for 120, no 10 for [10])."""
    from pydantic import TypeAdapter, ValidationError

    hints = typing.get_type_hints(cls)
    problems = []
    for key, value in values.items():
        try:
            blob = json.dumps(value)
        except TypeError:  # a YAML date, a tagged object, ...
            problems.append(_type_problem(section, key, value, hints[key], _default(cls, key), None))
            continue
        try:  # JSON mode: YAML lists are valid for tuple fields; strict: nothing is coerced
            TypeAdapter(hints[key]).validate_json(blob, strict=True)
        except ValidationError as e:
            problems.append(_type_problem(section, key, value, hints[key], _default(cls, key), e))
    if len(problems) == 1:
        raise ConfigError(f"{path}: {problems[0]}")
    if problems:
        raise ConfigError(f"{path}: {len(problems)} settings have the wrong type:\n  " + "\n  ".join(problems))


def _type_problem(section: str, key: str, value, hint, default, error: Exception) -> str:
    """One line: key path, the bad value, the expected type and an example fix."""
    loc = tuple(error.errors()[0]["loc"]) if error is not None else ()
    where = f"{section}.{key}" + "".join(f"[{i}]" if isinstance(i, int) else f".{i}" for i in loc)
    shown = value
    for i in loc:
        try:
            shown = shown[i]
        except (KeyError, IndexError, TypeError):
            shown = value
            break
    expected = _describe_type(hint)
    fix = f"e.g. `{key}: {_yaml_flow(default)}` (the default)" if default is not None else f"set it to {expected}"
    if _wants_str(hint) and isinstance(shown, (int, float)) and not isinstance(shown, bool):
        fix = f"quote it, e.g. `{key}: \"{shown}\"`"
    return f"{where} is {_show(shown)} ({_describe_value(shown)}); expected {expected}. Fix: {fix}"


def _default(cls, key: str):
    f = next(f for f in dataclasses.fields(cls) if f.name == key)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


_NAMES = {int: ("an integer", "integers"), float: ("a number", "numbers"), bool: ("true or false", "true/false values"),
          str: ("a string", "strings"), type(None): ("null", "nulls"), dict: ("a mapping", "mappings"),
          list: ("a list", "lists"), tuple: ("a list", "lists")}


def _describe_type(hint, plural: bool = False) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe_type(a, plural) for a in args)
    if origin is tuple:
        return ("lists" if plural else "a list") + f" of {_describe_type(args[0], plural=True)}"
    if origin is dict:
        return ("mappings" if plural else "a mapping") + f" of {_describe_type(args[0], True)} to " \
               f"{_describe_type(args[1], True)}"
    names = _NAMES.get(hint, (getattr(hint, "__name__", str(hint)),) * 2)
    return names[1] if plural else names[0]


def _describe_value(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return _describe_type(type(value)) if type(value) in _NAMES else type(value).__name__


def _show(value) -> str:
    """A value as the YAML file spells it (strings quoted, so `"120"` and `120` differ)."""
    if isinstance(value, str):
        return repr(value)
    try:
        return _yaml_flow(value)
    except Exception:  # noqa: BLE001 - a YAML-tagged object safe_dump cannot write back
        return repr(value)


def _wants_str(hint) -> bool:
    return hint is str or str in typing.get_args(hint)


def _yaml_flow(value) -> str:
    import yaml

    value = list(value) if isinstance(value, tuple) else value
    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("...").strip()


def _did_you_mean(unknown, valid) -> str:
    close = [(u, m[0]) for u in sorted(unknown) if (m := difflib.get_close_matches(u, list(valid), n=1))]
    return "".join(f" ({u!r}: did you mean {m!r}?)" for u, m in close)
