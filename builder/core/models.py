"""One way to name and pin a model: a Hub id with a pinned commit, or a local folder pinned by its content."""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)


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
