"""What the card says about a build's real source: its name, description, licence and terms, Hub fields, citation.

The source is known from what was built: the prefix of the records' source ids (`demo:`, `ddi:`,
`fitz17k:`), which ingest derives from the source's layout. A build mixing sources gets every
one's terms and the strictest licence; an unknown source gets `license: unknown` and a card that
says so, never another source's terms.
"""
from __future__ import annotations

import dataclasses

from builder.core.schema import Record

TOOLKIT_LICENSE = "apache-2.0"  # pyproject.toml: cgddi-toolkit is Apache-2.0


@dataclasses.dataclass(frozen=True)
class Source:
    name: str                      # the id prefix
    title: str
    description: str               # what the source photos are (markdown, one paragraph)
    license: str                   # Hub licence id
    terms: str                     # LICENSE.md body for this source (markdown)
    source_datasets: tuple[str, ...]
    citations: tuple[str, ...]     # keys of CITATIONS
    collection: str                # how the source photos were collected (Croissant rai:dataCollection)
    sensitive: str                 # personal and sensitive information they carry
    biases: tuple[str, ...]        # known biases of the source
    gated_prompt: str | None = None
    gated_fields: dict | None = None
    real_patients: bool = True


DEMO = Source(
    name="demo", title="the toolkit's embedded demo source",
    description=("synthetic photos made by cgddi-toolkit itself (`builder/demo_source.py`): drawn skin "
                 "of three tone groups with drawn lesions, surgical-ink marks and rulers, with sDDI-format "
                 "masks and a DDI-format table. **No patient and no real photo is involved**; the labels "
                 "(disease, malignancy, tone) are assigned by the generator, not by any diagnosis. It "
                 "exists to try the pipeline end to end; a model trained on it learns nothing about skin."),
    license=TOOLKIT_LICENSE, real_patients=False,
    terms=("The demo source and everything built from it are made by cgddi-toolkit and are covered by "
           "the toolkit's own licence, the Apache License 2.0 "
           "(https://www.apache.org/licenses/LICENSE-2.0). No third-party data is included."),
    source_datasets=("original",), citations=("cgddi",),
    collection=("No collection: the source photos are drawn by a seeded generator in the toolkit "
                "(`builder/demo_source.py`), with labels assigned by the same generator."),
    sensitive="None: no person is depicted or described; every photo and label is made by the toolkit.",
    biases=("The demo source is drawn: its skin, lesions and tone groups are simplistic colour models, "
            "balanced by construction; nothing in it reflects real skin or real disease frequencies.",))

DDI = Source(
    name="ddi", title="Stanford Diverse Dermatology Images (DDI)",
    description=("the Stanford Diverse Dermatology Images (DDI): clinical photos of biopsy-confirmed "
                 "lesions from 570 patients (656 images), with Fitzpatrick skin-type groups I-II, III-IV "
                 "and V-VI, and sDDI (FEDD) lesion masks."),
    license="other",
    terms=("Derived from the Stanford Diverse Dermatology Images (DDI), distributed by Stanford under "
           "research-use terms, which this dataset inherits:\n\n"
           "1. Use it for non-commercial research and education only.\n"
           "2. Do not attempt to identify any patient, and do not combine it with data that could.\n"
           "3. Do not use it for clinical decisions or in a medical device.\n"
           "4. Do not share the images with anyone who has not agreed to these terms.\n"
           "5. Cite cgDDI, DDI and sDDI (see the dataset card).\n\n"
           "The images keep pixels of the DDI photos (the card gives the measured share per kind): "
           "access is gated and requires agreeing to these terms. The original photos are available "
           "only from the DDI authors, under their own terms."),
    source_datasets=("extended|ddi", "extended|sddi"), citations=("cgddi", "ddi", "sddi"),
    collection=("DDI: clinical photos taken at Stanford Clinics (2010-2020) of lesions that were biopsied, "
                "labelled with the histopathological diagnosis and a Fitzpatrick skin-type group (Daneshjou "
                "et al., 2022); lesion masks from sDDI (FEDD project), drawn on 333 of the photos."),
    sensitive=("Health data: every image shows a patient's skin lesion and carries its biopsy diagnosis and "
               "the patient's skin-type group. Healthy and lesion-mapped images keep most pixels of those "
               "photos (measured in the card), which can include tattoos, scars, jewellery or body parts "
               "that identify a person. DDI's photos were de-identified by its authors; the toolkit adds "
               "no other identifying data (patient ids are not published)."),
    biases=("Skin tone is DDI's three coarse Fitzpatrick groups; variation within a group and the "
            "lighting, anatomy and camera habits of one clinic's photos carry over to every synthetic.",
            "DDI's diseases are long-tailed: rare classes rest on a handful of photos, which lesion "
            "mapping and semantic sampling repeat."),
    gated_prompt=("This dataset is derived from the Stanford Diverse Dermatology Images (DDI) and keeps "
                  "pixels of its clinical photos. Access is for non-commercial research only, under DDI's "
                  "research-use terms (LICENSE.md): no attempt to identify patients, no clinical use, no "
                  "redistribution outside these terms."),
    gated_fields={"Name": "text", "Affiliation": "text", "Country": "country",
                  "I will use this dataset for non-commercial research or education only": "checkbox",
                  "I will not attempt to identify any patient": "checkbox",
                  "I agree to the DDI research-use terms in LICENSE.md": "checkbox"})

FITZ17K = Source(
    name="fitz17k", title="Fitzpatrick17k",
    description=("Fitzpatrick17k (Groh et al., CVPR 2021): clinical photos collected from the DermaAmin "
                 "and Atlas Dermatologico online atlases, labelled with Fitzpatrick skin type 1-6 and "
                 "diagnosis; lesion masks supplied with the source folder (the `masks/<md5>_lesions.png` "
                 "layout is DermSynth3D's hand annotation, Sinha et al. 2024)."),
    license="cc-by-nc-sa-3.0",
    terms=("This dataset is an adaptation of **Fitzpatrick17k** (Groh et al., 2021; "
           "https://github.com/mattgroh/fitzpatrick17k), whose images were collected from DermaAmin and "
           "Atlas Dermatologico, licensed under the Creative Commons Attribution-NonCommercial-ShareAlike "
           "3.0 Unported licence (CC BY-NC-SA 3.0, https://creativecommons.org/licenses/by-nc-sa/3.0/). "
           "It is shared under the same licence.\n\n"
           "Changes made: lesions were inpainted away (healthy images), real lesions were moved from one "
           "photo onto another (lesion-mapped images); unchanged pixels of the photos remain (the card "
           "gives the measured share per kind). Lesion masks: DermSynth3D (Sinha et al., 2024; "
           "https://github.com/sfu-mial/DermSynth3D), distributed in that repository under its licence "
           "file, the GNU Affero General Public License v3.0 (its README's badge says GPL v3.0); no "
           "separate licence is stated for the annotations. The masks shaped every healthy and "
           "lesion-mapped image (the inpainted region, the pasted lesion)."),
    source_datasets=("extended|fitzpatrick17k",), citations=("cgddi", "fitzpatrick17k", "dermsynth3d"),
    collection=("Fitzpatrick17k: photos gathered from two public dermatology atlases (DermaAmin, Atlas "
                "Dermatologico) with their diagnosis captions; Fitzpatrick types annotated from the photos "
                "by crowd annotators (a subset checked by dermatologists, the source's `qc` column); lesion "
                "masks drawn by hand by the DermSynth3D authors."),
    sensitive=("Health data: every image shows a person's skin condition with its diagnosis and skin type. "
               "The atlases published the photos; healthy and lesion-mapped images keep most of their "
               "pixels (measured in the card), which can include faces, tattoos or other identifying "
               "features. The toolkit adds no identifying data."),
    biases=("Fitzpatrick17k's diagnoses are the atlases' captions, not biopsies made for this dataset, and "
            "its skin types are crowd annotations; types V-VI are rare in it.",
            "Atlas photos favour textbook-typical presentations and vary widely in framing and camera."))

SOURCES = {s.name: s for s in (DEMO, DDI, FITZ17K)}


def unknown_source(name: str) -> Source:
    return Source(
        name=name, title=f"source `{name}`",
        description=(f"a source named `{name}`, which cgddi-toolkit does not know: its provenance, consent "
                     "and licence are not recorded here. **Fill them in before publishing.**"),
        license="unknown",
        terms=(f"The terms of source `{name}` are not known to cgddi-toolkit. Whoever publishes this "
               "dataset must state them here, and must have the right to publish images that keep "
               "pixels of that source's photos."),
        source_datasets=(f"extended|{name}",), citations=("cgddi",),
        collection=f"Not recorded: cgddi-toolkit does not know how source `{name}` was collected.",
        sensitive=(f"Not recorded for source `{name}`: treat its photos as patient health data until its "
                   "provider says otherwise."),
        biases=(f"Unknown: source `{name}` is not described to the toolkit.",))


def sources_of(records: list[Record]) -> list[Source]:
    """The sources the records derive from, by id prefix, in a fixed order."""
    names = sorted({sid.split(":", 1)[0] for r in records for sid in r.source_ids})
    return [SOURCES.get(n) or unknown_source(n) for n in names]


def card_license(sources: list[Source]) -> str:
    """One source: its licence. Several: `other` (the combined terms in LICENSE.md), `unknown` if any is."""
    licenses = {s.license for s in sources}
    if "unknown" in licenses:
        return "unknown"
    return licenses.pop() if len(licenses) == 1 else "other"


def gated(sources: list[Source]) -> tuple[str | None, dict | None]:
    """The Hub's `extra_gated_prompt` / `extra_gated_fields` when any source needs gated access."""
    prompts = [s.gated_prompt for s in sources if s.gated_prompt]
    fields = {k: v for s in sources for k, v in (s.gated_fields or {}).items()}
    return ("\n\n".join(prompts) or None), (fields or None)


def license_md(sources: list[Source]) -> str:
    """LICENSE.md: the terms of every source the build derives from."""
    head = "# Terms of use\n\n"
    if len(sources) == 1:
        return head + sources[0].terms + "\n"
    return head + "".join(f"## {s.title}\n\n{s.terms}\n\n" for s in sources).rstrip() + "\n"
