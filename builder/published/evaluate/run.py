"""`builder evaluate`: per-skin-tone fidelity (Frechet / KID in a pinned model's feature space) and downstream
utility (malignancy AUROC, real vs real + synthetic) of a built version, with bootstrap 95% CIs.

Evaluating never touches the shards: results go to `evaluation.json` and `plots/evaluation.png` beside
them, the card gains a section, and the manifest lists both files with their sha256. Features and
trained classifiers are cached in the work folder, keyed by model, revision, settings and image
digests, so an interrupted run resumes and a rerun is instant.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
from pathlib import Path

import numpy as np

from builder.published.evaluate import stats as st
from builder.published.evaluate.balance import imbalance
from builder.published.evaluate.images import decode_images
from builder.core.errors import ConfigError
from builder.core.heap import release
from builder.core.layout import VersionLayout
from builder.core.schema import KINDS, SKIN_TONES, canonical_json, digest
from builder.core.store import StageStore, atomic_write

log = logging.getLogger(__name__)
GROUPS = SKIN_TONES + ("overall",)
SYNTHETIC_KINDS = tuple(k for k in KINDS if k != "real")


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """Everything that decides the figures (it keys the caches and is written into evaluation.json)."""

    model: str                       # feature model for fidelity (Hub id or local folder)
    revision: str | None = None      # pinned commit (local folders are pinned by content)
    classifier: str | None = None    # backbone for utility; None = `model`
    classifier_revision: str | None = None
    steps: int = 300                 # optimizer steps per classifier (fixed recipe)
    batch_size: int = 16
    lr: float = 1e-5                 # backbone learning rate
    head_lr: float = 1e-3            # linear head learning rate
    n_boot: int = 1000               # bootstrap resamples per CI
    specificity: float = 0.9         # sensitivity is reported at this specificity
    kid_subset: int = 100
    seed: int = 0
    kinds: tuple[str, ...] = SYNTHETIC_KINDS  # synthetic kinds added to the real train images
    clip_model: str | None = None    # image-text model (CLIP-style) for semantic rows' prompt agreement
    clip_revision: str | None = None
    inception_weights: str | None = None  # local Inception-v3 FID weights file (default: the library downloads)
    lpips_weights: str | None = None      # local AlexNet weights file for LPIPS (default: torchvision downloads)

    def check(self) -> None:
        """Bad settings fail before any model is loaded."""
        for name in ("steps", "batch_size", "n_boot", "kid_subset"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)}: expected a whole number >= 1")
        if not 0 < self.specificity < 1:
            raise ConfigError(f"--specificity {self.specificity}: expected a fraction in (0, 1), e.g. 0.9")
        from builder.published.evaluate import standard as sd

        sd.check_weights(self.inception_weights, sd.INCEPTION_SHA256_PREFIX, "--inception-weights", "Inception-v3 FID")
        sd.check_weights(self.lpips_weights, sd.ALEXNET_SHA256_PREFIX, "--lpips-weights", "AlexNet (LPIPS)")
        bad = [k for k in self.kinds if k not in SYNTHETIC_KINDS]
        if bad:
            raise ConfigError(f"--kinds {bad}: expected some of {list(SYNTHETIC_KINDS)}")
        from builder.core.models import check_pinned

        for model, rev, flag in self.models():
            if model:
                check_pinned(model, rev, setting=flag, flag=flag)

    def models(self) -> tuple[tuple[str | None, str | None, str], ...]:
        """(model, revision, the flag that pins it) for the feature, classifier and CLIP models."""
        return ((self.model, self.revision, "--revision"),
                (self.classifier, self.classifier_revision, "--classifier-revision"),
                (self.clip_model, self.clip_revision, "--clip-revision"))


@dataclasses.dataclass(frozen=True, slots=True)
class Item:
    """One image taking part in the evaluation. `blob` is its encoded bytes, or the file holding them: a
    version's images are spilled to the evaluation cache and read back a batch at a time, so memory does
    not grow with the version (`data` reads them). `sha`: the bytes' digest where it is known (spilled
    rows), so cache keys never re-read the files. Slotted, with its strings shared between rows: a row
    costs a few hundred bytes."""

    sample_id: str
    kind: str
    split: str
    tone: str
    malignant: int
    blob: bytes | str | Path
    prompt: str | None = None
    source_ids: tuple[str, ...] = ()  # the real photos this image derives from (a real photo: itself)
    sha: str | None = None

    @property
    def data(self) -> bytes:
        return self.blob if isinstance(self.blob, bytes) else Path(self.blob).read_bytes()

    def data_digest(self) -> str:
        return self.sha or digest(self.data)


# -- inputs -------------------------------------------------------------------------------------
def version_items(folder: Path, spill: Path | None = None) -> list[Item]:
    """Every synthetic row of the version's shards (the per-kind configs; `all` only points at them).

    Shards are streamed (a batch of rows at a time). With `spill` (a folder of the evaluation cache), each
    image's bytes go to `spill/<digest>.png` (written once) and the item names the file: memory holds the
    rows' labels only (repeated strings shared), whatever the version's size. Without it the bytes stay in
    memory (small versions, tests)."""
    import pyarrow.parquet as pq

    from builder.build.manifest import read_manifest

    columns = ["sample_id", "image", "kind", "split", "skin_tone", "malignant", "prompt", "source_ids"]
    items, shared = [], {}
    one = lambda v: shared.setdefault(v, v)  # noqa: E731  (one copy of each repeated string)
    for f in sorted(read_manifest(folder)["files"], key=lambda f: f["path"]):
        if "config" not in f:
            continue
        # pre_buffer off: pyarrow would otherwise read ahead whole row groups (RSS grew with the shard)
        shard = pq.ParquetFile(folder / f["path"], pre_buffer=False, buffer_size=1 << 20)
        for batch in shard.iter_batches(batch_size=64, columns=columns, use_threads=False):
            for r in batch.to_pylist():
                blob, sha = r["image"]["bytes"], None
                if spill is not None:
                    sha = digest(blob)
                    path = spill / f"{sha}.png"
                    if not path.is_file():
                        atomic_write(path, blob)
                    blob = str(path)
                items.append(Item(r["sample_id"], KINDS[r["kind"]], one(r["split"]), SKIN_TONES[r["skin_tone"]],
                                  int(r["malignant"]), blob, None if r["prompt"] is None else one(r["prompt"]),
                                  tuple(one(x) for x in r["source_ids"]), sha))
    return sorted(items, key=lambda i: i.sample_id)


def real_items(real: Path, splits_csv: Path) -> tuple[list[Item], int]:
    """Real images of a stage store with their split from `splits.csv`; also how many had no split."""
    from builder.core.splits_file import read_splits

    if not (real / "records").is_dir():
        raise ConfigError(f"--real {real} is not a real stage store (no records/ folder); pass the build's "
                          "work folder store, e.g. out/.work/1.1/real")
    if not splits_csv.is_file():
        raise ConfigError(f"--splits {splits_csv} not found; pass the build's splits.csv "
                          "(out/.work/<version>/splits.csv)")
    split_of = read_splits(splits_csv)
    store, items, missing = StageStore(real), [], 0
    for rec in store.records():
        split = split_of.get(rec.source_ids[0])
        if split is None:
            missing += 1
            continue
        items.append(Item(rec.source_ids[0], "real", split, rec.skin_tone, int(rec.malignant),
                          store.root / (rec.image_path or f"images/{rec.sample_id}.png"),
                          source_ids=(rec.source_ids[0],)))  # read a batch at a time
    return sorted(items, key=lambda i: i.sample_id), missing


# -- models -------------------------------------------------------------------------------------
def model_identity(model: str, revision: str | None, flag: str = "--revision") -> dict:
    """How a model is named in results: a Hub id + commit, or `local:<name>` + content digest."""
    from builder.core.models import pin_model

    pinned = pin_model(model, revision, setting=flag, flag=flag)
    return {"id": pinned.name, "revision": pinned.revision}


@functools.lru_cache(maxsize=2)
def _embedder(model: str, revision: str | None, device: str):
    """The feature model, loaded once per process (the fidelity sets share it)."""
    from curation.embed import load_embedder

    return load_embedder(model, revision, device, setting="--revision", flag="--revision")


def features(items: list[Item], settings: EvalSettings, cache: Path, device: str):
    """Pooled image features of the feature model, one row per item (cached by model and image digests,
    written a batch at a time; a large set comes back as rows of its cache file: featurefile)."""
    from builder.published.evaluate import featurefile

    ident = model_identity(settings.model, settings.revision)
    key = digest(canonical_json([ident, [i.data_digest() for i in items]]).encode())
    path = cache / f"features-{key}.npy"
    if not path.is_file():
        featurefile.write(path, _feature_batches(items, settings, device), len(items))
    return featurefile.load(path)


def _feature_batches(items: list[Item], settings: EvalSettings, device: str):
    import torch

    from builder.core.progress import progress
    from curation.embed import image_features

    net, processor = _embedder(settings.model, settings.revision, device)
    for s in progress(range(0, len(items), 32), desc="features", total=-(-len(items) // 32), unit="batch"):
        inputs = processor(images=decode_images(items[s:s + 32]), return_tensors="pt").to(device)
        with torch.inference_mode():
            yield image_features(net, inputs).float().cpu().numpy().astype(np.float64)


# -- measures -----------------------------------------------------------------------------------
def _by_group(items: list[Item]) -> dict[str, np.ndarray]:
    """Row numbers per tone group, as integer arrays."""
    tones = np.array([SKIN_TONES.index(i.tone) for i in items], dtype=np.int8)
    idx = {g: np.flatnonzero(tones == n) for n, g in enumerate(SKIN_TONES)}
    idx["overall"] = np.arange(len(items))
    return idx


def fidelity(real: list[Item], synth: list[Item], settings: EvalSettings, cache: Path, device: str) -> dict:
    """Frechet distance and KID (with bootstrap CIs) between real and each synthetic kind, per tone group."""
    f_real = features(real, settings, cache, device)
    out = {}
    for kind in SYNTHETIC_KINDS:
        mine = [i for i in synth if i.kind == kind]
        if not mine:
            continue
        f_syn = features(mine, settings, cache, device)
        groups_r, groups_s = _by_group(real), _by_group(mine)
        out[kind] = {g: _two_sample(f_real[groups_r[g]], f_syn[groups_s[g]], settings) for g in GROUPS}
    return out


def _two_sample(a: np.ndarray, b: np.ndarray, settings: EvalSettings) -> dict:
    def kid(x, y):
        return st.kid(x, y, subsets=10, subset_size=settings.kid_subset, seed=settings.seed)

    boot = max(20, settings.n_boot // 5)  # a Frechet distance per resample costs a matrix square root
    return {"n_real": len(a), "n_synthetic": len(b),
            "frechet": _num(st.frechet_distance(a, b)),
            "frechet_ci": _ci(st.bootstrap_ci(st.frechet_distance, [a, b], boot, settings.seed)),
            "kid": _num(kid(a, b)), "kid_ci": _ci(st.bootstrap_ci(kid, [a, b], boot, settings.seed))}


def utility(real: list[Item], synth: list[Item], settings: EvalSettings, cache: Path, device: str) -> dict:
    """Malignancy AUROC per tone on the real test split: trained on real train vs real train + synthetics."""
    from builder.published.evaluate.classifier import train_and_score

    train = [i for i in real if i.split == "train"]
    test = [i for i in real if i.split == "test"]
    if not train or not test or len({i.malignant for i in train}) < 2:
        raise ConfigError(f"utility needs real train images of both classes and real test images; got "
                          f"{len(train)} train ({sum(i.malignant for i in train)} malignant), {len(test)} test: "
                          "check --real and --splits")
    synthetic = [i for i in synth if i.split == "train" and i.kind in settings.kinds]
    ident = model_identity(settings.classifier or settings.model,
                           settings.classifier_revision if settings.classifier else settings.revision)
    runs = {"real": train, "real+synthetic": train + synthetic}
    out = {"n_train": {k: len(v) for k, v in runs.items()}, "n_test": len(test)}
    y = np.array([i.malignant for i in test])
    for label, items in runs.items():
        scores = train_and_score(items, test, settings, ident, cache, device, label)
        out[label] = _per_group_auroc(test, y, scores, settings)
    return out


def _per_group_auroc(test: list[Item], y: np.ndarray, scores: np.ndarray, settings: EvalSettings) -> dict:
    res = {}
    for g, idx in _by_group(test).items():
        rows = st.paired(y[idx], scores[idx])
        res[g] = {"n_test": len(idx), "n_malignant": int(y[idx].sum()),
                  "auroc": _num(st.auroc(y[idx], scores[idx])),
                  "auroc_ci": _ci(st.bootstrap_ci(lambda r: st.auroc(r[:, 0], r[:, 1]), [rows],
                                                  settings.n_boot, settings.seed)),
                  "sensitivity": _num(st.sensitivity_at_specificity(y[idx], scores[idx], settings.specificity))}
    tones = [res[t]["auroc"] for t in SKIN_TONES if res[t]["auroc"] is not None]
    res["gap"] = round(max(tones) - min(tones), 4) if len(tones) >= 2 else None
    return res


def clip_agreement(items: list[Item], settings: EvalSettings, cache: Path, device: str) -> dict | None:
    """Cosine between each semantic image and its own prompt in a CLIP-style space, per tone, against a
    baseline of the same images with another row's prompt (a rotation of the prompts); None without a model."""
    if not settings.clip_model or not items:
        return None
    ident = model_identity(settings.clip_model, settings.clip_revision, "--clip-revision")
    prompts = [i.prompt or "" for i in items]
    shifted = prompts[1:] + prompts[:1] if len(set(prompts)) > 1 else None
    key = digest(canonical_json([ident, [i.data_digest() for i in items], prompts]).encode())
    path = cache / f"clip-{key}.json"
    if path.is_file():
        own, other = (np.asarray(v, dtype=np.float64) if v is not None else None
                      for v in json.loads(path.read_text()))
    else:
        own, other = _clip_cosines(items, prompts, shifted, settings, device)
        atomic_write(path, json.dumps([own.tolist(), None if other is None else other.tolist()]).encode())
    out = {}
    for g, idx in _by_group(items).items():
        r = {"n": len(idx), "cosine": _num(float(own[idx].mean())) if len(idx) else None,
             "cosine_ci": _ci(st.bootstrap_ci(np.mean, [own[idx]], settings.n_boot, settings.seed)) if len(idx)
             else [None, None]}
        r["other_prompt_cosine"] = _num(float(other[idx].mean())) if other is not None and len(idx) else None
        out[g] = r
    return out


def _clip_cosines(items, prompts, shifted, settings: EvalSettings, device: str):
    import torch
    import transformers

    from builder.core.models import pin_model

    clip = pin_model(settings.clip_model, settings.clip_revision, setting="--clip-revision", flag="--clip-revision")
    net = transformers.AutoModel.from_pretrained(clip.source, revision=clip.load_revision).to(device).eval()
    processor = transformers.AutoProcessor.from_pretrained(clip.source, revision=clip.load_revision)

    def text(ps):
        t = processor.tokenizer(ps, padding=True, truncation=True, return_tensors="pt").to(device)
        return torch.nn.functional.normalize(_pooled(net.get_text_features(**t)), dim=-1)

    own, other = [], []
    with torch.inference_mode():
        for s in range(0, len(items), 32):
            pix = processor.image_processor(images=decode_images(items[s:s + 32]), return_tensors="pt").to(device)
            img = torch.nn.functional.normalize(_pooled(net.get_image_features(**pix)), dim=-1)
            own.append((img * text(prompts[s:s + 32])).sum(-1).cpu().numpy())
            if shifted is not None:
                other.append((img * text(shifted[s:s + 32])).sum(-1).cpu().numpy())
    return (np.concatenate(own).astype(np.float64),
            np.concatenate(other).astype(np.float64) if shifted is not None else None)


def _pooled(x):
    return x.pooler_output if hasattr(x, "pooler_output") else x


def _num(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4) + 0.0  # + 0.0: no "-0.0"


def _ci(t: tuple[float, float, int]) -> list[float | None]:
    return [_num(t[0]), _num(t[1])]


# -- the run ------------------------------------------------------------------------------------
def run_evaluation(folder: Path, settings: EvalSettings, *, real: Path | None = None, splits: Path | None = None,
                   work: Path | None = None, device: str = "cpu", inception=None, lpips=None,
                   protocol=None) -> dict:
    """Evaluate the built version in `folder`; writes evaluation.json, the plot, the card section, the manifest.

    `inception` / `lpips`: networks used in place of the standard ones (tests: a tiny random network, which
    the results name as what it is); by default the standard networks are loaded, or their reason not to run
    is recorded. `protocol`: ProtocolSettings to also run the paper's classifier protocol (GPU-sized)."""
    from builder.build.manifest import recover_version
    from builder.core.heap import bounded_heap
    from builder.core.lock import hold

    settings.check()
    if protocol is not None:
        protocol.check()
    folder = Path(folder)
    work = work or VersionLayout.of_folder(folder).work
    # the build's own lock: a rebuild of this version cannot replace it while its figures are computed
    # and written (they would land in the new version's card and manifest)
    VersionLayout.of_folder(folder).check_no_links()
    with hold(work, command=f"evaluate {folder.name}"):
        recover_version(folder)  # a run killed while it swapped the version in: the whole version back first
        if not (folder / "manifest.json").is_file():
            raise ConfigError(f"{folder} holds no built version (no manifest.json); build it first with "
                              "`python -m builder build --version <V>` or pass --folder")
        with bounded_heap():  # resident memory stays at the working set however many rows (core.heap)
            return _evaluate(folder, settings, real, splits, work, device, inception, lpips, protocol)


def _evaluate(folder: Path, settings: EvalSettings, real: Path | None, splits: Path | None, work: Path,
              device: str, inception, lpips, protocol) -> dict:
    real_items_, missing = real_items(real or work / "real", splits or work / "splits.csv")
    cache = work / "evaluation"
    (cache / "images").mkdir(parents=True, exist_ok=True)
    synth = version_items(folder, spill=cache / "images")  # bounded memory: images read a batch at a time
    release()
    model_fidelity = fidelity(real_items_, synth, settings, cache, device)
    release()
    tables = paper_tables(real_items_, synth, settings, cache, device, inception, lpips, model_fidelity)
    release()
    useful = utility(real_items_, synth, settings, cache, device)
    release()
    result = {
        "version": folder.name,
        "imbalance": imbalance(real_items_ + synth),
        "models": {"features": model_identity(settings.model, settings.revision),
                   "classifier": model_identity(settings.classifier or settings.model,
                                                settings.classifier_revision if settings.classifier
                                                else settings.revision)},
        "settings": {k: v for k, v in dataclasses.asdict(settings).items()
                     if k not in ("model", "revision", "classifier", "classifier_revision", "inception_weights",
                                  "lpips_weights")},
        "counts": {"real": len(real_items_), "real_without_split": missing,
                   "synthetic": {k: sum(i.kind == k for i in synth) for k in SYNTHETIC_KINDS}},
        "fidelity": model_fidelity,
        **tables,
        "utility": useful,
        "clip_agreement": clip_agreement([i for i in synth if i.kind == "semantic"], settings, cache, device),
    }
    if protocol is not None:
        from builder.published.evaluate.protocol import run_protocol

        result["protocol"] = run_protocol(real_items_, synth, protocol, cache, device)
    if settings.clip_model:
        result["models"]["clip"] = model_identity(settings.clip_model, settings.clip_revision, "--clip-revision")
    write_results(folder, result)
    return result


def paper_tables(real, synth, settings: EvalSettings, cache: Path, device: str, inception, lpips,
                 model: dict) -> dict:
    """S6 and S8 (standard FID / KID / LPIPS and the augmentation baselines) and the paper's own figures."""
    from builder.published.evaluate import paper_figures
    from builder.published.evaluate import standard as sd
    from builder.published.evaluate.paper_tables import standard_fidelity, transformative

    inception = inception if inception is not None else sd.load_inception(settings.inception_weights, device)
    lpips = lpips if lpips is not None else sd.load_lpips(settings.lpips_weights, device)
    s6 = standard_fidelity(real, synth, settings, cache, device, inception, lpips)

    def model_features(items):
        return features(items, settings, cache, device)

    s8 = transformative(real, settings, cache, device, inception, model_features, s6, model)
    return {"standard_fidelity": s6, "transformative": s8, "paper": paper_figures.as_dict()}


def write_results(folder: Path, result: dict) -> list[str]:
    """evaluation.json + plots/evaluation.png + the card section; the manifest re-lists these files.

    They are written into a hard-linked copy of the version, which then replaces it by renames (as a
    build installs one): a kill at any moment leaves the version as it was or with every figure in
    place, never a card out of step with its manifest."""
    import os

    from builder.build.manifest import hardlinked_copy, relist_files, swap_in
    from cards.evaluation import write_card_section, write_plot

    folder = Path(folder)
    staging = hardlinked_copy(folder, folder.parent / ".staging" / f"{folder.name}.{os.getpid()}")
    atomic_write(staging / "evaluation.json", (json.dumps(result, indent=2, sort_keys=True) + "\n").encode())
    plot = write_plot(staging, result)
    write_card_section(staging / "README.md", result, plot)
    paths = ["evaluation.json", plot, "README.md"]
    relist_files(staging, paths)
    swap_in(staging, folder)
    return paths
