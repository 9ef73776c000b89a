"""The leakage rules on published rows (audit, export): which source ids decide a row's side.

Strict: every source id of the row (`source_ids`: its photo, a lesion map's base and donor, every photo a
semantic image's models saw). The paper's: `curation.leakage.paper_sources`, resolved from the published
columns alone: a lesion map's donor photos (`params.donor_source_ids`, or a `donor_id` that is a source id),
a semantic image's healthy prompt (`parent_id`, a published healthy row) and that prompt photo's disease
(`params.healthy_prompt_photos`, else a published lesion map whose donor it is, else a published real row;
a disease not known counts as the row's own, so the paper's rule is never applied more laxly than stated).
A version states its rule in its manifest (`config.curation.leakage_rule`; none: strict).
"""
from __future__ import annotations

import json
from pathlib import Path

from curation.leakage import RULES, paper_sources

RULE_COLUMNS = ["sample_id", "kind", "disease", "source_ids", "parent_id", "donor_id", "params"]


def version_rule(folder: Path) -> str:
    """The rule a version folder states (its manifest's curation config), strict when it states none."""
    try:
        manifest = json.loads((Path(folder) / "manifest.json").read_text())
        rule = ((manifest.get("config") or {}).get("curation") or {}).get("leakage_rule") or "strict"
    except (OSError, ValueError, AttributeError):
        return "strict"  # an unreadable manifest is the integrity check's finding, not this one's
    return rule if rule in RULES else "strict"


def row_facts(kind: str, row: dict) -> dict:
    """What the paper's rule reads of one published row (`kind` its name): donor photos, healthy prompt,
    the prompt photos' diseases the row recorded."""
    params = row.get("params")
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except ValueError:
            params = {}
    params = params if isinstance(params, dict) else {}
    donor = tuple(params.get("donor_source_ids") or ())
    if not donor and kind == "lesion_mapped" and ":" in (row.get("donor_id") or ""):
        donor = (row["donor_id"],)  # an imported release names the donor photo itself
    photos = params.get("healthy_prompt_photos") if kind == "semantic" else None
    return {"donor_sources": donor, "parent_id": row.get("parent_id"),
            "prompt_photos": dict(photos) if isinstance(photos, dict) else {}}


class Resolver:
    """The version's rows seen once: healthy prompts' photos and photos' diseases, for `sources`."""

    def __init__(self) -> None:
        self.parents: dict[str, tuple[str, ...]] = {}  # healthy sample id -> its photos
        self.disease_of: dict[str, str] = {}           # photo source id -> its joined disease

    def see(self, kind: str, sample_id: str, disease: str, source_ids, facts: dict) -> None:
        if kind == "healthy":
            self.parents[sample_id] = tuple(source_ids)
        elif kind == "real" and len(source_ids) == 1:
            self.disease_of.setdefault(source_ids[0], disease)
        elif kind == "lesion_mapped" and len(facts["donor_sources"]) == 1:
            self.disease_of.setdefault(facts["donor_sources"][0], disease)

    def sources(self, rule: str, kind: str, disease: str, source_ids, facts: dict) -> list[str]:
        """The source ids whose holdout puts this row on the test side under `rule`."""
        if rule == "strict" or kind == "real":
            return sorted(source_ids)
        prompt = self.parents.get(facts["parent_id"] or "")
        photos = dict(facts["prompt_photos"])
        if prompt is not None:
            photos = {s: photos.get(s) or self.disease_of.get(s) for s in prompt}
        return paper_sources(kind, disease, source_ids, donor_sources=facts["donor_sources"], prompt_photos=photos)
