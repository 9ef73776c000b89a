"""One way to name and pin a model: a Hub id with a pinned commit, or a local folder pinned by its content."""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)

# The model stack: an optional extra (`cgddi-toolkit[models]`); a default CPU build imports none of it.
MODEL_PACKAGES = frozenset({"torch", "diffusers", "transformers", "peft", "accelerate", "safetensors"})
MODELS_INSTALL = 'pip install "cgddi-toolkit[models]"'


def missing_model_stack(e: BaseException) -> str | None:
    """One line naming the pip command when `e` is a missing package of the model stack, else None."""
    name = (getattr(e, "name", None) or "").split(".")[0] if isinstance(e, ImportError) else ""
    if name not in MODEL_PACKAGES:
        return None
    return (f"this command needs {name}, part of the model stack, which is not installed: {MODELS_INSTALL} "
            '(from a checkout: pip install -e ".[models]")')


def local_revision(model_id: str) -> str | None:
    """A local model folder has no commit: pin its content instead (`local-<digest of every file>`)."""
    import hashlib
    from pathlib import Path

    folder = Path(model_id)
    if not folder.is_dir():
        log.warning("model %s has no pinned revision: outputs are not reproducible once the Hub "
                    "repo changes; pass --revision <commit>", model_id)
        return None

    h = hashlib.blake2b(digest_size=8)
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.parts):
        h.update(f.relative_to(folder).as_posix().encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 24), b""):
                h.update(chunk)
    return f"local-{h.hexdigest()}"
