"""The one record schema every stage reads and writes: typed lineage columns, defined once."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable

TOOLKIT_VERSION = "0.1.0"

KINDS = ("real", "healthy", "lesion_mapped", "semantic")
# The build step that makes each row kind (`builder.build.steps`); a generation step's name is also its
# config section. The command line spells step names with `-` (`generate lesion-map`).
STEP_OF_KIND = {"real": "ingest", "healthy": "healthy", "lesion_mapped": "lesion_map", "semantic": "semantic"}
SKIN_TONES = ("light", "medium", "dark")
MALIGNANCY = ("benign", "malignant")
SPLITS = ("train", "validation", "test")

# DDI skin_tone groups (Fitzpatrick I-II, III-IV, V-VI) -> tone names.
DDI_TONE_TO_NAME = {12: "light", 34: "medium", 56: "dark"}
TONE_NAME_TO_DDI = {v: k for k, v in DDI_TONE_TO_NAME.items()}

# sDDI label-map values; every mask in the toolkit is converted to this form.
LABEL_BACKGROUND, LABEL_LESION, LABEL_MARKER, LABEL_RULER, LABEL_SKIN = 0, 1, 2, 3, 4
LABEL_VALUES = (0, 1, 2, 3, 4)
# The published `mask` column's values (a single-channel PNG, the row's size): the value is the index here.
# 1 is sDDI's lesion value; 2 marks the pixels a healthy inpainting replaced (healed skin).
MASK_LABELS = ("other", "lesion", "healed")
MASK_OTHER, MASK_LESION, MASK_HEALED = 0, 1, 2
# Which row kinds carry a mask: healthy (the healed region), lesion-mapped (the pasted lesion, and its base's
# healed region where the lesion does not cover it). Real and semantic rows have none (None).
MASKED_KINDS = ("healthy", "lesion_mapped")

HEALTHY_DISEASE = "healthy"
DISEASE_MAP_FILE = Path(__file__).resolve().parents[1] / "data" / "ddi_disease_map.csv"
# The cgDDI release's per-disease model repos (`repo_name,joined_disease`; 65 rows, 7 names differ from slugs).
RELEASED_MODELS_FILE = DISEASE_MAP_FILE.with_name("released_models.csv")

# How a lesion-mapped row's lesion was placed: a random valid position on the planned base
# ("fit"), after shrinking the lesion ("downscaled"), on another base of the same split and tone
# ("other_base", "other_base_downscaled"), or, nothing fitting, where it lay in the donor photo
# ("kept_in_place": the original method's last resort; the lesion may overlap non-skin).
PLACEMENTS = ("fit", "downscaled", "other_base", "other_base_downscaled", "kept_in_place")

@lru_cache(maxsize=1)
def joined_diseases() -> tuple[str, ...]:
    """DDI's joined disease classes (`builder/data/ddi_disease_map.csv`), alphabetical."""
    import csv

    with open(DISEASE_MAP_FILE, newline="") as f:
        return tuple(sorted({row["joined_disease"] for row in csv.DictReader(f)}))


def disease_names(diseases: Iterable[str] = ()) -> tuple[str, ...]:
    """The `disease` ClassLabel names for rows labelled `diseases`, from the classes of the source they were
    built from: rows labelled with DDI's joined classes only (DDI, the demo source) get all 65 of them, so
    every DDI version shares one list; rows with any class outside DDI's (Fitzpatrick17k's labels) get the
    classes they carry, alphabetically. Then `healthy`."""
    present = set(diseases) - {HEALTHY_DISEASE}
    ddi = joined_diseases()
    return (ddi if present <= set(ddi) else tuple(sorted(present))) + (HEALTHY_DISEASE,)


def version_disease_names(records: Iterable["Record"]) -> tuple[str, ...]:
    """A version's `disease` ClassLabel names (`disease_names` over every record of the version): the one
    list the shards are written with and the card and croissant.json describe."""
    return disease_names(r.disease for r in records)


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
    parent_id: str | None = None    # healthy: the real image (store sample id) it was inpainted from;
    #                                 semantic img2img: the healthy synthetic it started from
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
    # What one stage hands a later one: kept in the stage store, never a published column.
    mask_rejection: MaskRejection | None = None  # real: the automatic mask that failed its gate
    plan_row: int | None = None                  # lesion-mapped: the plan row it was mapped from
    base_source_ids: tuple[str, ...] = ()        # lesion-mapped: the base's source photos
    donor_source_ids: tuple[str, ...] = ()       # lesion-mapped: the donor's source photos
    mask_path: str | None = None                 # healthy, lesion-mapped: the published `mask` PNG in the store

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
        d["base_source_ids"], d["donor_source_ids"] = list(self.base_source_ids), list(self.donor_source_ids)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Record":
        d = _handoff_from_params(_shared(d))
        d["generator"] = Generator.from_dict(d.get("generator"))
        d["auto_masks"] = tuple(AutoMask.from_dict(m) for m in d.get("auto_masks") or ())
        d["source_ids"] = list(d["source_ids"])
        d["mask_rejection"] = MaskRejection(**d["mask_rejection"]) if d.get("mask_rejection") else None
        d["base_source_ids"] = tuple(d.get("base_source_ids") or ())
        d["donor_source_ids"] = tuple(d.get("donor_source_ids") or ())
        return cls(**d)

    def to_row(self, image_bytes: bytes, disease_codes: dict[str, int] | None = None,
               mask_bytes: bytes | None = None) -> dict[str, Any]:
        """The published row, in `PUBLISHED_COLUMNS` order: ClassLabels as ints, params as canonical
        JSON, image (and mask, when the row has one) as bytes. `disease_codes` maps disease name ->
        ClassLabel int (`disease_names` of the version)."""
        codes = disease_codes if disease_codes is not None else _base_codes()
        if self.disease not in codes:
            raise ValueError(f"{self.sample_id}: disease {self.disease!r} is not among the version's disease "
                             "names; build them with schema.disease_names(<every record's disease>)")
        files = {"image": image_bytes, "mask": mask_bytes}
        return {c.name: c.cell(self, files, codes) for c in PUBLISHED_COLUMNS}


@dataclasses.dataclass(frozen=True)
class MaskRejection:
    """Why a photo's automatic mask was not used: the gate's snake_case reason and its detail."""

    reason: str
    detail: str


def _handoff_from_params(d: dict[str, Any]) -> dict[str, Any]:
    """A record stored before the hand-off fields existed: take them from its params (read once, here)."""
    p = d.get("params") or {}
    if "mask_rejection" not in d and "mask_rejected" in p:
        d["mask_rejection"] = {"reason": p["mask_rejected"], "detail": p.get("mask_rejected_detail") or ""}
    if "plan_row" not in d and "plan_row" in p:
        d["plan_row"], d["base_source_ids"] = p["plan_row"], p.get("base_source_ids") or ()
        d["donor_source_ids"] = p.get("donor_source_ids") or ()
    return d


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


# -- the published columns ---------------------------------------------------------------------
# value type -> (pyarrow type, Croissant dataType); `datasets` spells the value types as here.
VALUE_TYPES = {"string": ("string", "sc:Text"), "int8": ("int8", "sc:Integer"), "int64": ("int64", "sc:Integer"),
               "bool": ("bool_", "sc:Boolean"), "float64": ("float64", "sc:Float")}
DISEASE_LABELS = ()  # `Column.labels` of `disease`: the version's names (`disease_names`), known at build time


@dataclasses.dataclass(frozen=True)
class Column:
    """One published column, declared once: every other view of it (Arrow, `datasets`, Croissant, the
    card's table, `Record.to_row`) is derived from this.

    `dtype`: a VALUE_TYPES key, "image" (PNG bytes + file name) or "struct" (of `members`);
    `labels`: ClassLabel names (dtype int64, the index; DISEASE_LABELS = the version's diseases);
    `lineage`: says how the row was made rather than what it shows; `dictionary`: few distinct values
    (dictionary-encoded in the shards); `fill(record, files, disease_codes)`: the row's value, `files`
    the row's PNG bytes by column (`image`, `mask`: None where it has none) (None: the record's
    attribute of the same name)."""

    name: str
    dtype: str
    description: str
    labels: tuple[str, ...] | None = None
    is_list: bool = False
    members: tuple["Column", ...] = ()
    lineage: bool = False
    dictionary: bool = False
    fill: Callable[[Record, dict[str, bytes | None], dict[str, int]], Any] | None = None

    def __post_init__(self) -> None:
        dtypes = (*VALUE_TYPES, "image", "struct")
        if self.dtype not in dtypes or (self.labels is not None and self.dtype != "int64"):
            raise ValueError(f"column {self.name!r}: dtype {self.dtype!r} is not one of {dtypes} "
                             "(a ClassLabel is stored as int64)")

    def cell(self, rec: Record, files: dict[str, bytes | None], codes: dict[str, int]) -> Any:
        return self.fill(rec, files, codes) if self.fill else getattr(rec, self.name)

    def arrow_type(self):
        """The pyarrow type (imports pyarrow)."""
        import pyarrow as pa

        if self.dtype == "image":
            t = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        elif self.dtype == "struct":
            t = pa.struct([(m.name, m.arrow_type()) for m in self.members])
        else:
            t = getattr(pa, VALUE_TYPES[self.dtype][0])()
        return pa.list_(t) if self.is_list else t

    def feature(self, diseases: tuple[str, ...]) -> dict[str, Any]:
        """The `datasets` feature in its serialized form (`diseases`: the names DISEASE_LABELS stands for)."""
        if self.labels is not None:
            f = {"names": list(self.labels or diseases), "_type": "ClassLabel"}
        elif self.dtype == "image":
            f = {"_type": "Image"}
        elif self.dtype == "struct":
            f = {m.name: m.feature(diseases) for m in self.members}
        else:
            f = {"dtype": self.dtype, "_type": "Value"}
        return {"feature": f, "_type": "List"} if self.is_list else f

    @property
    def croissant_type(self) -> str | None:
        """Croissant dataType (a ClassLabel is its integer index); None for a struct (sub-fields instead)."""
        if self.dtype == "struct":
            return None
        return "sc:ImageObject" if self.dtype == "image" else VALUE_TYPES[self.dtype][1]

    @property
    def card_type(self) -> str:
        """The type as the card's column table names it."""
        t = ("ClassLabel" if self.labels is not None else "Image (PNG)" if self.dtype == "image" else self.dtype)
        return f"list of {t}" if self.is_list else t

    def leaf_paths(self, dictionary_only: bool = False) -> list[str]:
        """Parquet paths of its leaves (`a.list.element.b`) as writer options name them; `dictionary_only`:
        those declared `dictionary`."""
        head = f"{self.name}.list.element" if self.is_list else self.name
        if self.members:
            return [f"{head}.{p}" for m in self.members for p in m.leaf_paths(dictionary_only)]
        if dictionary_only and not self.dictionary:
            return []
        return [f"{head}.bytes", f"{head}.path"] if self.dtype == "image" else [head]


def _s(name: str, description: str, **kw) -> Column:
    return Column(name, "string", description, **kw)


PUBLISHED_COLUMNS: tuple[Column, ...] = (
    _s("sample_id", "stable id `<kind>-<16 hex>` from content and lineage"),
    Column("image", "image", "the image; PNG bytes as generated, never re-encoded",
           fill=lambda r, f, _: {"bytes": f["image"], "path": f"{r.sample_id}.png"}),
    Column("mask", "image", "segmentation mask, a single-channel PNG of the image's size: 0 other skin or "
           "background, 1 lesion, 2 healed (pixels a healthy inpainting replaced); healthy rows: their healed "
           "region; lesion-mapped rows: the pasted lesion, and their base's healed region where the lesion does "
           "not cover it; None for real and semantic rows",
           fill=lambda r, f, _: None if f["mask"] is None else {"bytes": f["mask"], "path": f"{r.sample_id}.mask.png"}),
    Column("kind", "int64", "how the image was made: " + ", ".join(KINDS), labels=KINDS, dictionary=True,
           fill=lambda r, _i, _c: KINDS.index(r.kind)),
    _s("split", "train, validation or test (by the leakage rule)", dictionary=True),
    Column("skin_tone", "int64", "light (Fitzpatrick I-II), medium (III-IV), dark (V-VI)", labels=SKIN_TONES,
           dictionary=True, fill=lambda r, _i, _c: SKIN_TONES.index(r.skin_tone)),
    Column("fitzpatrick", "int8", "Fitzpatrick type 1-6 when the source gives one", dictionary=True),
    Column("malignant", "int64", "benign or malignant", labels=MALIGNANCY, dictionary=True,
           fill=lambda r, _i, _c: int(bool(r.malignant))),
    Column("disease", "int64", "disease class, from the source's classes: DDI's 65 joined classes for a "
           "DDI-labelled source, else the classes the rows carry (Fitzpatrick17k's labels); then `healthy`",
           labels=DISEASE_LABELS, dictionary=True, fill=lambda r, _i, codes: codes[r.disease]),
    Column("has_lesion", "bool", "false for healthy rows (no lesion: `malignant` is then `benign` by convention)",
           dictionary=True, fill=lambda r, _i, _c: r.kind != "healthy"),
    _s("disease_raw", "the source's own disease label, before joining", dictionary=True),
    _s("source_ids", "every source photo the row derives from (`<source>:<id>`)", is_list=True, lineage=True,
       fill=lambda r, _i, _c: list(r.source_ids)),
    _s("patient_id", "the source table's patient id, when it has one (splits group by it)", lineage=True),
    _s("parent_id", "healthy: the real photo's sample id it was inpainted from; semantic (image-to-image): the "
       "healthy synthetic's sample id it started from", lineage=True),
    _s("base_id", "lesion mapping: the healthy base image", lineage=True),
    _s("donor_id", "lesion mapping: the real photo the lesion was taken from", lineage=True),
    _s("placement", "lesion mapping: `fit` (random valid position), `downscaled`, `other_base`, "
       "`other_base_downscaled` (the plan's fallbacks), `kept_in_place` (nothing fit: left where it lay in "
       "the donor, as the original method did)", lineage=True, dictionary=True),
    _s("prompt", "generation prompt (diffusion rows only)", lineage=True, dictionary=True),
    Column("seed", "int64", "per-sample seed (rows whose pixels depend on one)", lineage=True),
    Column("generator", "struct", "what produced the image: backend, model id, pinned revision, adapter files",
           lineage=True, fill=lambda r, _i, _c: r.generator.to_dict() if r.generator else None, members=(
               _s("backend", "opencv, lesion_map, diffusers, ...", dictionary=True),
               _s("model_id", "model id (Hub id, or `local:<folder name>`)", dictionary=True),
               _s("revision", "pinned model revision", dictionary=True),
               _s("adapters", "adapter files (textual inversion, LoRA) with their hashes", is_list=True))),
    Column("auto_masks", "struct", "automatic (not hand-drawn) masks the row derives from: source id, method, "
           "version, confidence; empty = hand masks only", is_list=True, lineage=True,
           fill=lambda r, _i, _c: [m.to_dict() for m in r.auto_masks], members=(
               _s("source_id", "the source photo the mask belongs to"), _s("method", "mask method"),
               _s("version", "mask method version"),
               Column("confidence", "float64", "the method's confidence in the mask"))),
    _s("params", "generation parameters as canonical JSON", lineage=True,
       fill=lambda r, _i, _c: canonical_json(r.params) if r.params is not None else None),
    _s("toolkit_version", "toolkit version that built the row", lineage=True, dictionary=True),
)
COLUMNS = tuple(c.name for c in PUBLISHED_COLUMNS)  # the published order (of `Record.to_row` too)


def arrow_schema(diseases: tuple[str, ...] | None = None):
    """The pyarrow schema of published shards, with the `huggingface` features metadata.

    `diseases`: the `disease` ClassLabel names (default `disease_names()`); they change the
    metadata only, never the Arrow types."""
    import pyarrow as pa

    meta = {b"huggingface": json.dumps({"info": {"features": features_dict(diseases)}}).encode()}
    return pa.schema([(c.name, c.arrow_type()) for c in PUBLISHED_COLUMNS], metadata=meta)


def features_dict(diseases: tuple[str, ...] | None = None) -> dict[str, Any]:
    """`datasets.Features` in its serialized form (what goes into Parquet metadata and the card)."""
    names = tuple(diseases) if diseases is not None else disease_names()
    return {c.name: c.feature(names) for c in PUBLISHED_COLUMNS}


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
