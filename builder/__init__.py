"""cgDDI dataset builder: versioned build, shards, push, audit and exports (no heavy imports here)."""
from builder.core.schema import TOOLKIT_VERSION as __version__  # noqa: F401
