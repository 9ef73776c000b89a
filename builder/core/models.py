"""One way to name and pin a model: a Hub id with a pinned commit, or a local folder pinned by its content.

Every model loader calls `pin_model` and loads `pinned.source` at `pinned.load_revision`; rows, ids
and caches name the model by `pinned.name` / `pinned.revision` / `pinned.identity`. The one policy:

- a local folder is pinned by its content (`local-<digest of every file>`), whatever revision is given;
- a Hub id needs a revision (a commit): without one the loader refuses before any work.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from builder.core.errors import ConfigError
from builder.core.schema import public_model_id

log = logging.getLogger(__name__)

# The model stack: an optional extra (`cgddi-toolkit[models]`); a default CPU build imports none of it.
MODEL_PACKAGES = frozenset({"torch", "diffusers", "transformers", "peft", "accelerate", "safetensors",
                            "torchmetrics", "albumentations"})
MODELS_INSTALL = 'pip install "cgddi-toolkit[models]"'


def missing_model_stack(e: BaseException) -> str | None:
    """One line naming the pip command when `e` is a missing package of the model stack, else None."""
    name = (getattr(e, "name", None) or "").split(".")[0] if isinstance(e, ImportError) else ""
    if name not in MODEL_PACKAGES:
        return None
    return (f"this command needs {name}, part of the model stack, which is not installed: {MODELS_INSTALL} "
            '(from a checkout: pip install -e ".[models]")')


@dataclasses.dataclass(frozen=True)
class PinnedModel:
    """A model as it is loaded, published and fingerprinted."""

    source: str      # what from_pretrained loads: the folder path or the Hub id
    name: str        # public name: `local:<folder name>` or the Hub id (no machine path ever)
    revision: str    # `local-<content digest>` or the Hub commit
    local: bool

    @property
    def load_revision(self) -> str | None:
        """The `revision=` for from_pretrained: the commit for a Hub id, None for a folder."""
        return None if self.local else self.revision

    @property
    def identity(self) -> str:
        """What ids depend on: a folder's content digest (not where it lies on disk), else the Hub id."""
        return self.revision if self.local else self.name


def check_pinned(model_id: str | None, revision: str | None, *, setting: str,
                 flag: str | None = "--revision") -> None:
    """The pinning policy without reading any file (`check` calls it before any work).

    `setting` names the config setting of the model's revision (e.g. `healthy.revision`), `flag` the
    command-line flag that sets it (None: none does; a command without a config passes the flag as both)."""
    fix = (f"pass {flag} <commit>" if setting == flag else
           f"set {setting} to its commit" + (f" ({flag} <commit>)" if flag else ""))
    if not model_id:
        raise ConfigError(f"no model given for {setting}: name a local folder, or a Hub id and {fix}")
    if Path(model_id).is_dir():
        return
    if Path(model_id).is_absolute() or model_id.startswith("."):
        raise ConfigError(f"model folder {model_id!r} does not exist; give an existing folder saved with "
                          "save_pretrained, or a Hub id with a pinned revision")
    if not revision:
        raise ConfigError(f"model {model_id!r} is a Hub id without a pinned revision: {fix}, or give a "
                          "local folder")


def pin_model(model_id: str | None, revision: str | None, *, setting: str,
              flag: str | None = "--revision") -> PinnedModel:
    """Pin `model_id` by the one policy (module docstring); refuses a Hub id without a revision."""
    check_pinned(model_id, revision, setting=setting, flag=flag)
    digest = local_revision(model_id)
    if digest is None:
        return PinnedModel(model_id, model_id, revision, local=False)
    if revision and revision != digest:
        log.warning("%s: %r is a local folder, pinned by its content (%s); the revision %r is not used",
                    setting, model_id, digest, revision)
    return PinnedModel(model_id, public_model_id(model_id), digest, local=True)


def local_revision(model_id: str) -> str | None:
    """A local model folder has no commit: its content is its pin (`local-<digest of every file>`).
    None when `model_id` is not a folder."""
    import hashlib

    folder = Path(model_id)
    if not folder.is_dir():
        return None
    h = hashlib.blake2b(digest_size=8)
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.parts):
        h.update(f.relative_to(folder).as_posix().encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 24), b""):
                h.update(chunk)
    return f"local-{h.hexdigest()}"
