"""The per-disease models cgDDI released, as sampling models: a textual-inversion embedding and a LoRA each.

A released repo (`hcarrion/<name>` on the Hub at a revision, or a local copy of one) holds the files
its training scripts wrote: `learned_embeds.safetensors` ({token: embedding}, diffusers' textual
inversion script) and `pytorch_lora_weights.safetensors` (`save_lora_weights`). Its name maps to a
joined disease through the packaged `released_models.csv` (65 names; 7 are not the toolkit's
slugs); a name that is not there is refused, never guessed. The embedding's token must be the
disease's own (`<{disease}-class>`).

The released models were trained on every DDI photo of their disease, without a holdout, so each
model's lineage is all of them: under the strict rule no sample of one can be a train row for a
DDI test set that holds a photo of its disease. The rows say so in `params.released_model`.
"""
from __future__ import annotations

import collections
import csv
import re
from pathlib import Path

from builder.core.errors import ConfigError
from builder.core.schema import RELEASED_MODELS_FILE, public_model_id
from generation.semantic.lora import LORA_FILE
from generation.semantic.sampling import DiseaseModel
from generation.semantic.textual_inversion import EMBEDS
from generation.semantic.training_set import disease_token, sha256_file

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
TRAINED_ON = "every DDI photo of its disease (the released models were trained without a holdout)"


def released_names() -> dict[str, str]:
    """Released repo name -> joined disease."""
    with open(RELEASED_MODELS_FILE, newline="") as f:
        return {r["repo_name"]: r["joined_disease"] for r in csv.DictReader(f)}


def check_spec(spec: str, what: str = "--released") -> None:
    """A local folder, or a Hub model id with its revision (`owner/name@revision`)."""
    repo, _, revision = spec.partition("@")
    if not Path(spec).is_dir() and (not HUB_ID.match(repo) or not revision):
        raise ConfigError(f"{what} {spec!r}: expected a local folder or a Hub model id with its revision, "
                          "e.g. hcarrion/melanoma@<commit or tag>")


def fetch_released(spec: str) -> tuple[Path, dict]:
    """(local folder, origin) of `spec`: a folder, or `owner/name@revision` on the Hub (only the two
    adapter files are downloaded, at the commit the revision resolves to)."""
    path = Path(spec)
    if path.is_dir():
        return path, {"repo": public_model_id(str(path)), "revision": None, "commit": None}
    check_spec(spec)
    repo, _, revision = spec.partition("@")
    from huggingface_hub import HfApi, snapshot_download

    commit = HfApi().model_info(repo, revision=revision).sha
    folder = snapshot_download(repo, revision=commit, allow_patterns=[EMBEDS, LORA_FILE])
    return Path(folder), {"repo": repo, "revision": revision, "commit": commit}


def load_released_models(specs, photos_of: dict[str, list[tuple[str, bool]]], diseases=(),
                         what: str = "semantic.released", diseases_setting: str = "semantic.diseases") -> dict:
    """disease -> DiseaseModel of every released spec, one per disease; `diseases`, when given, must name the
    same diseases. `what` / `diseases_setting` name the config keys or flags in the errors."""
    models = {}
    for spec in specs:
        m = load_released(spec, photos_of)
        if m.disease in models:
            raise ConfigError(f"{what} {spec!r} is a second model of {m.disease!r}; give one model per disease")
        models[m.disease] = m
    if diseases and set(diseases) != set(models):
        raise ConfigError(f"{diseases_setting} {sorted(diseases)} differs from the released models' diseases "
                          f"{sorted(models)}; leave {diseases_setting} out with {what}")
    return models


def load_released(spec: str, photos_of: dict[str, list[tuple[str, bool]]]) -> DiseaseModel:
    """A released repo as a DiseaseModel. `photos_of`: joined disease -> [(source id, malignant)] of
    every DDI photo (the model's lineage and its label's majority)."""
    folder, origin = fetch_released(spec)
    name = (origin["repo"] or "").split("/")[-1] if origin["commit"] else folder.name
    disease = released_names().get(name)
    if disease is None:
        raise ConfigError(f"released model {name!r} ({spec}) is not one of the 65 names in "
                          f"{RELEASED_MODELS_FILE.name}; pass a cgDDI per-disease repo (e.g. hcarrion/melanoma)")
    ti, lora = folder / EMBEDS, folder / LORA_FILE
    for path in (ti, lora):
        if not path.is_file():
            raise ConfigError(f"{spec}: no {path.name}; a released model holds {EMBEDS} and {LORA_FILE}")
    _check_token(ti, disease, spec)
    _check_lora(lora, spec)
    photos = photos_of.get(disease) or []
    if not photos:
        raise ConfigError(f"no DDI photo of {disease!r} in the metadata table; pass DDI's ddi_metadata.csv")
    votes = collections.Counter(m for _, m in photos)
    label = origin["repo"] if origin["commit"] is None else f"{origin['repo']}@{origin['commit']}"
    adapters = {f"{label}/{p.name}": sha256_file(p) for p in (ti, lora)}
    origin = {**origin, "trained_on": TRAINED_ON, "photos": len(photos)}
    return DiseaseModel(disease, ti, lora, adapters, {}, tuple(sorted(s for s, _ in photos)),
                        votes[True] >= votes[False], origin, training_photos=len(photos))


def _check_token(path: Path, disease: str, spec: str) -> None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
        shape = f.get_slice(keys[0]).get_shape() if len(keys) == 1 else None
    want = disease_token(disease)
    if keys != [want]:
        raise ConfigError(f"{spec}/{EMBEDS} holds tokens {keys}, expected exactly [{want!r}] for {disease!r}")
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[0] != 1):
        raise ConfigError(f"{spec}/{EMBEDS}: embedding of shape {shape}, expected one vector")


def _check_lora(path: Path, spec: str) -> None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
    if not keys or not all("lora" in k for k in keys):
        raise ConfigError(f"{spec}/{LORA_FILE} holds no LoRA weights ({len(keys)} tensors, e.g. {keys[:2]}); "
                          "expected the file save_lora_weights writes")
