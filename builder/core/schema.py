"""The one record schema every stage reads and writes: typed lineage columns, defined once."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

TOOLKIT_VERSION = "0.1.0"

KINDS = ("real", "healthy", "lesion_mapped", "semantic")
SKIN_TONES = ("light", "medium", "dark")
MALIGNANCY = ("benign", "malignant")
SPLITS = ("train", "validation", "test")

# DDI skin_tone groups (Fitzpatrick I-II, III-IV, V-VI) -> tone names.
DDI_TONE_TO_NAME = {12: "light", 34: "medium", 56: "dark"}
TONE_NAME_TO_DDI = {v: k for k, v in DDI_TONE_TO_NAME.items()}

# sDDI label-map values; every mask in the toolkit is converted to this form.
LABEL_BACKGROUND, LABEL_LESION, LABEL_MARKER, LABEL_RULER, LABEL_SKIN = 0, 1, 2, 3, 4
LABEL_VALUES = (0, 1, 2, 3, 4)

HEALTHY_DISEASE = "healthy"
DISEASE_MAP_FILE = Path(__file__).resolve().parents[1] / "data" / "ddi_disease_map.csv"
# The cgDDI release's per-disease model repos (`repo_name,joined_disease`; 65 rows, 7 names differ from slugs).
RELEASED_MODELS_FILE = DISEASE_MAP_FILE.with_name("released_models.csv")

# How a lesion-mapped row's lesion was placed: a random valid position on the planned base
# ("fit"), after shrinking the lesion ("downscaled"), on another base of the same split and tone
# ("other_base", "other_base_downscaled"), or, nothing fitting, where it lay in the donor photo
# ("kept_in_place": the original method's last resort; the lesion may overlap non-skin).
PLACEMENTS = ("fit", "downscaled", "other_base", "other_base_downscaled", "kept_in_place")

# Column order of the published table (and of `Record.to_row`).
COLUMNS = (
    "sample_id", "image", "kind", "split", "skin_tone", "fitzpatrick", "malignant",
    "disease", "has_lesion", "disease_raw", "source_ids", "patient_id", "parent_id", "base_id", "donor_id",
    "placement", "prompt", "seed",
    "generator", "auto_masks", "params", "toolkit_version",
)


@lru_cache(maxsize=1)
def joined_diseases() -> tuple[str, ...]:
    """DDI's joined disease classes (`builder/data/ddi_disease_map.csv`), alphabetical."""
    import csv

    with open(DISEASE_MAP_FILE, newline="") as f:
        return tuple(sorted({row["joined_disease"] for row in csv.DictReader(f)}))


def disease_names(diseases: Iterable[str] = ()) -> tuple[str, ...]:
    """The `disease` ClassLabel names: the joined DDI classes, `healthy`, then any other name met in
    `diseases` (a source outside DDI's classes), alphabetically. DDI versions all share one list."""
    base = joined_diseases() + (HEALTHY_DISEASE,)
    return base + tuple(sorted(set(diseases) - set(base)))


def fitzpatrick_to_tone(fitzpatrick: int) -> str:
    """Fitzpatrick type 1-6 -> DDI tone group name (1-2 light, 3-4 medium, 5-6 dark)."""
    if fitzpatrick not in (1, 2, 3, 4, 5, 6):
        raise ValueError(f"fitzpatrick must be 1-6, got {fitzpatrick!r}")
    return SKIN_TONES[(fitzpatrick - 1) // 2]


@dataclasses.dataclass(frozen=True)
class Generator:
    """What produced a synthetic image: backend, model id, pinned revision, adapter files."""

    backend: str
    model_id: str | None = None
    revision: str | None = None
    adapters: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "model_id": self.model_id,
                "revision": self.revision, "adapters": list(self.adapters)}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "Generator | None":
        if d is None:
            return None
        return cls(d["backend"], d.get("model_id"), d.get("revision"), tuple(d.get("adapters") or ()))


@dataclasses.dataclass(frozen=True)
class AutoMask:
    """An automatic label map a row depends on: whose photo, which method and version, its confidence."""

    source_id: str
    method: str
    version: str
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AutoMask":
        return cls(d["source_id"], d["method"], d["version"], float(d["confidence"]))

    @property
    def method_version(self) -> str:
        return f"{self.method} {self.version}"


def merge_auto_masks(*groups) -> tuple[AutoMask, ...]:
    """The automatic masks of several parents, one per source id, sorted (a derived row's lineage)."""
    return tuple(sorted({m.source_id: m for g in groups for m in g}.values(), key=lambda m: m.source_id))


def _shared(x: Any) -> Any:
    """JSON-decoded values with short strings interned: a build holds every row's lineage in memory,
    and the same keys and values ("placement", "dark", "poisson") in every row (7 KB -> 2.4 KB a row)."""
    if isinstance(x, str):
        return sys.intern(x) if len(x) <= 64 else x
    if isinstance(x, dict):
        return {sys.intern(k): _shared(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_shared(v) for v in x]
    return x


@dataclasses.dataclass(slots=True)
class Record:
    """One image and its lineage. `image_path` points at PNG bytes inside a stage store."""

    sample_id: str
    kind: str
    skin_tone: str
    malignant: bool
    disease: str
    source_ids: list[str]
    image_path: str | None = None
    split: str | None = None
    fitzpatrick: int | None = None
    disease_raw: str | None = None
    patient_id: str | None = None   # the source's patient id, when its table has one (splits group by it)
    parent_id: str | None = None    # healthy: the real image (store sample id) it was inpainted from
    base_id: str | None = None
    donor_id: str | None = None
    placement: str | None = None  # lesion-mapped: one of PLACEMENTS
    prompt: str | None = None
    seed: int | None = None
    generator: Generator | None = None
    params: dict[str, Any] | None = None
    toolkit_version: str = TOOLKIT_VERSION
    # Automatic masks (not hand-drawn) this row's pixels or label map derive from; () = hand masks only.
    auto_masks: tuple[AutoMask, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind={self.kind!r} is not one of {KINDS}")
        if self.skin_tone not in SKIN_TONES:
            raise ValueError(f"skin_tone={self.skin_tone!r} is not one of {SKIN_TONES}")
        if self.split is not None and self.split not in SPLITS:
            raise ValueError(f"split={self.split!r} is not one of {SPLITS}")
        if self.placement is not None and self.placement not in PLACEMENTS:
            raise ValueError(f"placement={self.placement!r} is not one of {PLACEMENTS}")
        if not self.source_ids:
            raise ValueError(f"{self.sample_id}: source_ids is empty; every image derives from a real one")

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["generator"] = self.generator.to_dict() if self.generator else None
        d["auto_masks"] = [m.to_dict() for m in self.auto_masks]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Record":
        d = _shared(d)
        d["generator"] = Generator.from_dict(d.get("generator"))
        d["auto_masks"] = tuple(AutoMask.from_dict(m) for m in d.get("auto_masks") or ())
        d["source_ids"] = list(d["source_ids"])
        return cls(**d)

    def to_row(self, image_bytes: bytes, disease_codes: dict[str, int] | None = None) -> dict[str, Any]:
        """The published row: ClassLabels as ints, params as canonical JSON, image as bytes.

        `disease_codes` maps disease name -> ClassLabel int (`disease_names` of the version).
        """
        codes = disease_codes if disease_codes is not None else _base_codes()
        if self.disease not in codes:
            raise ValueError(f"{self.sample_id}: disease {self.disease!r} is not among the version's disease "
                             "names; build them with schema.disease_names(<every record's disease>)")
        return {
            "sample_id": self.sample_id,
            "image": {"bytes": image_bytes, "path": f"{self.sample_id}.png"},
            "kind": KINDS.index(self.kind),
            "split": self.split,
            "skin_tone": SKIN_TONES.index(self.skin_tone),
            "fitzpatrick": self.fitzpatrick,
            "malignant": int(bool(self.malignant)),
            "disease": codes[self.disease],
            "has_lesion": self.kind != "healthy",
            "disease_raw": self.disease_raw,
            "source_ids": list(self.source_ids),
            "patient_id": self.patient_id,
            "parent_id": self.parent_id,
            "base_id": self.base_id,
            "donor_id": self.donor_id,
            "placement": self.placement,
            "prompt": self.prompt,
            "seed": self.seed,
            "generator": self.generator.to_dict() if self.generator else None,
            "auto_masks": [m.to_dict() for m in self.auto_masks],
            "params": canonical_json(self.params) if self.params is not None else None,
            "toolkit_version": self.toolkit_version,
        }


@dataclasses.dataclass(frozen=True)
class Rejection:
    """An input that did not make it, with a snake_case reason and a human-readable detail."""

    stage: str
    item_id: str
    reason: str
    detail: str
    path: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@lru_cache(maxsize=1)
def _base_codes() -> dict[str, int]:
    return {name: i for i, name in enumerate(disease_names())}


def public_model_id(model_id: str | None) -> str | None:
    """How a model is named in published rows: a Hub id as is, a local folder as `local:<folder name>`.

    A machine's own path (home directories, user names) must never end up in a public dataset;
    the folder's content digest goes into `revision` instead, which is what pins it.
    """
    import os

    if model_id and (os.path.isabs(model_id) or model_id.startswith(".") or os.path.isdir(model_id)):
        return f"local:{os.path.basename(os.path.normpath(model_id))}"
    return model_id


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def make_sample_id(kind: str, content_digest: str, lineage: dict[str, Any]) -> str:
    """Stable id from content and lineage: `<kind>-<16 hex>`; same inputs, same id, any machine."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not one of {KINDS}")
    h = hashlib.blake2b(digest_size=8)
    h.update(kind.encode())
    h.update(content_digest.encode())
    h.update(canonical_json(lineage).encode())
    return f"{kind}-{h.hexdigest()}"


def sample_seed(sample_id: str, base_seed: int = 0) -> int:
    """Per-sample seed derived from its id (house style: no shared RNG streams)."""
    h = hashlib.blake2b(f"{base_seed}:{sample_id}".encode(), digest_size=4)
    return int.from_bytes(h.digest(), "little") & 0x7FFFFFFF


def arrow_schema(diseases: tuple[str, ...] | None = None):
    """The pyarrow schema of published shards, with the `huggingface` features metadata.

    `diseases`: the `disease` ClassLabel names (default `disease_names()`); they change the
    metadata only, never the Arrow types."""
    import pyarrow as pa

    generator = pa.struct([("backend", pa.string()), ("model_id", pa.string()),
                           ("revision", pa.string()), ("adapters", pa.list_(pa.string()))])
    auto_mask = pa.struct([("source_id", pa.string()), ("method", pa.string()), ("version", pa.string()),
                           ("confidence", pa.float64())])
    fields = [
        ("sample_id", pa.string()),
        ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ("kind", pa.int64()),
        ("split", pa.string()),
        ("skin_tone", pa.int64()),
        ("fitzpatrick", pa.int8()),
        ("malignant", pa.int64()),
        ("disease", pa.int64()),
        ("has_lesion", pa.bool_()),
        ("disease_raw", pa.string()),
        ("source_ids", pa.list_(pa.string())),
        ("patient_id", pa.string()),
        ("parent_id", pa.string()),
        ("base_id", pa.string()),
        ("donor_id", pa.string()),
        ("placement", pa.string()),
        ("prompt", pa.string()),
        ("seed", pa.int64()),
        ("generator", generator),
        ("auto_masks", pa.list_(auto_mask)),
        ("params", pa.string()),
        ("toolkit_version", pa.string()),
    ]
    meta = {b"huggingface": json.dumps({"info": {"features": features_dict(diseases)}}).encode()}
    return pa.schema(fields, metadata=meta)


def features_dict(diseases: tuple[str, ...] | None = None) -> dict[str, Any]:
    """`datasets.Features` in its serialized form (what goes into Parquet metadata and the card)."""
    def v(dtype: str) -> dict[str, Any]:
        return {"dtype": dtype, "_type": "Value"}

    def cl(names: tuple[str, ...]) -> dict[str, Any]:
        return {"names": list(names), "_type": "ClassLabel"}

    return {
        "sample_id": v("string"),
        "image": {"_type": "Image"},
        "kind": cl(KINDS),
        "split": v("string"),
        "skin_tone": cl(SKIN_TONES),
        "fitzpatrick": v("int8"),
        "malignant": cl(MALIGNANCY),
        "disease": cl(tuple(diseases) if diseases is not None else disease_names()),
        "has_lesion": v("bool"),
        "disease_raw": v("string"),
        "source_ids": {"feature": v("string"), "_type": "List"},
        "patient_id": v("string"),
        "parent_id": v("string"),
        "base_id": v("string"),
        "donor_id": v("string"),
        "placement": v("string"),
        "prompt": v("string"),
        "seed": v("int64"),
        "generator": {"backend": v("string"), "model_id": v("string"), "revision": v("string"),
                      "adapters": {"feature": v("string"), "_type": "List"}},
        "auto_masks": {"feature": {"source_id": v("string"), "method": v("string"), "version": v("string"),
                                   "confidence": v("float64")}, "_type": "List"},
        "params": v("string"),
        "toolkit_version": v("string"),
    }


def shard_disease_names(schema) -> tuple[str, ...]:
    """The `disease` ClassLabel names recorded in a shard's Arrow schema (its `huggingface` metadata)."""
    meta = json.loads((schema.metadata or {}).get(b"huggingface", b"{}"))
    feature = meta.get("info", {}).get("features", {}).get("disease", {})
    if feature.get("_type") != "ClassLabel":
        raise ValueError("the shard's `disease` column is not a ClassLabel (built by an older toolkit?); rebuild it")
    return tuple(feature["names"])


def features(diseases: tuple[str, ...] | None = None):
    """The same schema as `datasets.Features` (imports `datasets` lazily)."""
    import datasets

    return datasets.Features.from_dict(features_dict(diseases))
