"""What a released file's name says: kind, base, donor, disease and donor tone, or why it says nothing.

The release names a lesion map `{base}_with_{disease}_from_{donor tone}_{donor}.png`: base and
donor are DDI file stems (`000123`), the donor tone is DDI's group (12, 34 or 56) and the disease
is the joined class name written with spaces as `_` and `/` as `_or_`. Since `_` also separates
the parts, a disease is decoded only by looking its written form up among the known joined names
(`schema.joined_diseases`), never by undoing the substitutions. The release does not document how
its healthy and semantic images are named, so every other name is listed as unparsed, with the
reason, rather than guessed from its shape.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import PurePosixPath

from builder.core.errors import ReleaseError
from builder.core.schema import DDI_TONE_TO_NAME, joined_diseases

LESION_MAP = re.compile(r"^(?P<base>\d+)_with_(?P<disease>.+)_from_(?P<tone>\d+)_(?P<donor>\d+)$")
SOURCE = "ddi"  # the toolkit's id prefix of DDI photos: ddi:<stem>
UNPARSED = "unparsed"


def written_form(disease: str) -> str:
    """A joined disease as the release writes it in file names."""
    return disease.strip().replace("/", "_or_").replace(" ", "_")


def disease_codec(names: tuple[str, ...] | None = None) -> dict[str, str]:
    """written form -> joined disease, refusing two names that would be written alike."""
    out: dict[str, str] = {}
    for name in names if names is not None else joined_diseases():
        other = out.setdefault(written_form(name), name)
        if other != name:
            raise ReleaseError(f"joined diseases {other!r} and {name!r} are both written {written_form(name)!r} "
                               "in release file names; rename one in the disease map")
    return out


@dataclasses.dataclass(frozen=True)
class Parsed:
    """One release file: `kind` is `lesion_mapped` (with lineage) or `unparsed` (with `reason`)."""

    file: str
    kind: str
    base_id: str = ""
    donor_id: str = ""
    disease: str = ""
    donor_tone: str = ""
    reason: str = ""
    code: str = ""  # the reason's snake_case name, for counting


@dataclasses.dataclass(frozen=True)
class Photo:
    """What the DDI metadata table says of one photo."""

    stem: str
    ddi_id: str
    tone: int
    malignant: bool
    disease_raw: str
    disease: str


def parse_name(file: str, codec: dict[str, str], photos: dict[str, Photo]) -> Parsed:
    """Parse one release path (relative, `/`-separated); lineage is checked against the DDI table."""
    name = PurePosixPath(file).name

    def unparsed(code: str, reason: str) -> Parsed:
        return Parsed(file, UNPARSED, reason=reason, code=code)

    if not name.lower().endswith(".png"):
        return unparsed("not_png", "not a PNG image (release images are .png)")
    m = LESION_MAP.match(name[:-4])
    if m is None:
        return unparsed("other_name", "not named {base}_with_{disease}_from_{donor tone}_{donor}.png; the release "
                        "does not document other names (healthy, semantic), so none is guessed")
    base, donor, tone, written = m["base"], m["donor"], m["tone"], m["disease"]
    if int(tone) not in DDI_TONE_TO_NAME:
        return unparsed("unknown_tone", f"donor tone {tone} is not a DDI tone group (12, 34, 56)")
    disease = codec.get(written)
    if disease is None:
        return unparsed("unknown_disease", f"disease {written!r} is not the written form of any joined DDI disease")
    for role, stem in (("base", base), ("donor", donor)):
        if stem not in photos:
            return unparsed(f"unknown_{role}", f"{role} {stem} is not a photo of the DDI metadata table")
    if photos[donor].tone != int(tone):
        return unparsed("tone_differs", f"the name gives donor {donor} tone {tone}, the DDI table {photos[donor].tone}")
    if photos[donor].disease != disease:
        return unparsed("disease_differs", f"the name gives donor {donor} the disease {disease!r}, the DDI table "
                        f"{photos[donor].disease!r}")
    return Parsed(file, "lesion_mapped", f"{SOURCE}:{base}", f"{SOURCE}:{donor}", disease, tone)
