"""Versioned build configs: `builder/configs/<version>.yaml` fixes every content setting, strictly parsed."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from builder.core.errors import ConfigError

CONFIG_DIR = Path(__file__).parents[1] / "configs"


@dataclasses.dataclass(frozen=True)
class SourceConfig:
    name: str = "demo"
    demo_count: int = 36
    demo_seed: int = 20261125
    min_side_px: int = 64  # smaller photos are rejected `image_too_small` (why 64: curation/images.py)


@dataclasses.dataclass(frozen=True)
class HealthyConfig:
    backend: str = "opencv"
    model_id: str | None = None
    revision: str | None = None
    prompt: str = "An image of healthy skin on a {tone}-skinned individual"
    include_marker: bool = True
    dilate_px: int = 3
    feather_px: int = 2
    steps: int = 30
    guidance: float = 7.5
    seed: int = 0
    dtype: str = "auto"          # auto (fp16 on CUDA, fp32 on CPU) | float32 | float16 | bfloat16
    crop_size: int = 512         # model window around the region; large photos are not downscaled
    opencv_radius: int = 5       # cv2.inpaint neighbourhood (opencv backend)
    opencv_grain: float = 1.0    # seeded skin grain over the Telea fill (0 = smooth fill)


@dataclasses.dataclass(frozen=True)
class LesionMapConfig:
    budget: int = 120
    seed: int = 1
    pads: tuple[int, ...] = (10, 5, 0)
    rotate: bool = True
    dilate_px: int = 1
    feather: float = 1.5


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
    prior_weight: float = 1.0
    class_images: int = 96
    checkpoint_every: int = 100
    sample_steps: int = 50
    guidance: float = 7.5
    negative_prompt: str = ""
    sample_resolution: int = 512
    sample_batch: int = 8
    shard_size: int = 64


@dataclasses.dataclass(frozen=True)
class CurationConfig:
    split_seed: int = 12140420
    ratios: dict = dataclasses.field(default_factory=lambda: {"train": 0.7, "validation": 0.1, "test": 0.2})
    phash_hamming: int = 6
    split_method: str = "stratified"
    test_ids_file: str | None = None
    patchalign24_csv: str | None = None
    embedding_model: str | None = None
    embedding_revision: str | None = None
    embedding_min_cosine: float = 0.95


@dataclasses.dataclass(frozen=True)
class PublishConfig:
    shard_mb: float = 500
    include_real: bool = False
    repo_id: str | None = None  # Hub repo named in the card's usage snippet (push --repo-id decides the target)


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    version: str
    source: SourceConfig
    healthy: HealthyConfig
    lesion_map: LesionMapConfig
    semantic: SemanticConfig
    curation: CurationConfig
    publish: PublishConfig

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def config_hash(self) -> str:
        """Fingerprint of every content setting (goes into the manifest)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


_SECTIONS = {"source": SourceConfig, "healthy": HealthyConfig, "lesion_map": LesionMapConfig,
             "semantic": SemanticConfig, "curation": CurationConfig, "publish": PublishConfig}


def available_versions() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_config(version_or_path: str) -> BuildConfig:
    """Load `builder/configs/<version>.yaml` (or a YAML path); unknown keys are errors, not ignored."""
    import yaml

    path = Path(version_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = CONFIG_DIR / f"{version_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(f"no build config for version {version_or_path!r} (looked for {path}); "
                          f"available versions: {', '.join(available_versions())}")
    raw = yaml.safe_load(path.read_text()) or {}
    unknown = set(raw) - set(_SECTIONS) - {"version"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level keys {sorted(unknown)}; expected {sorted(_SECTIONS)}")
    sections = {}
    for name, cls in _SECTIONS.items():
        sections[name] = _build_section(path, name, cls, raw.get(name) or {})
    version = str(raw.get("version", path.stem))
    return BuildConfig(version=version, **sections)


def _build_section(path: Path, name: str, cls, values: dict) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise ConfigError(f"{path}: section {name!r} has unknown keys {sorted(unknown)}; "
                          f"valid keys: {sorted(fields)}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**kwargs)
