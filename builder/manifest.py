"""manifest.json: what a built version contains (files with sha256), how it was made, counts per stage."""
from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path

from builder.config import BuildConfig
from builder.schema import TOOLKIT_VERSION

LIBRARIES = ("datasets", "huggingface_hub", "pyarrow", "polars", "pillow", "numpy", "opencv-python-headless",
             "torch", "diffusers", "transformers", "peft", "accelerate", "imagehash", "faiss-cpu")


def library_versions() -> dict[str, str | None]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def write_manifest(out_dir: Path, cfg: BuildConfig, files: list[dict], stages: list[dict],
                   extra: dict | None = None) -> Path:
    """Write manifest.json (sorted keys, stable order): the build's record of itself."""
    manifest = {
        "version": cfg.version,
        "config_hash": cfg.config_hash(),
        "config": cfg.to_dict(),
        "toolkit_version": TOOLKIT_VERSION,
        "python": platform.python_version(),
        "libraries": library_versions(),
        "files": sorted(files, key=lambda f: f["path"]),
        "stages": stages,
        **(extra or {}),
    }
    path = out_dir / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=list) + "\n")
    return path


def read_manifest(out_dir: Path) -> dict:
    return json.loads((Path(out_dir) / "manifest.json").read_text())
