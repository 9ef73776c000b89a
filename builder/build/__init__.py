"""Build a version: the ordered steps (`pipeline`), then its Hub-layout shards, manifest and load-back check."""
from builder.build.pipeline import BuildOptions, BuildResult, build

__all__ = ["BuildOptions", "BuildResult", "build"]
