"""Command-line surface: `build`, `generate <step>`, `curate`, `review`, `push`, `audit`, `export`, `evaluate`.

Each command lives in its own module exposing `add_arguments(parser)` and `run(args) -> int`;
those modules import only light things at top level so `--help` answers fast (no torch).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from builder.core.errors import CgddiError

# (command, module, one-line help). A module is imported only to build its parser.
COMMANDS = [
    ("build", "builder.cli.build", "build a dataset version end to end"),
    ("curate", "builder.cli.curate", "ingest, split, de-duplicate and remove leakage"),
    ("push", "builder.cli.push", "push a built version to the Hub as one commit + tag"),
    ("review", "builder.cli.review", "review healthy images, automatic masks and lesion maps by hand (keyboard page)"),
    ("audit", "builder.cli.audit", "audit a version for leakage and integrity (exit 1 on failure)"),
    ("export", "builder.cli.export", "export train + test CSVs for PatchAlign24 or FairDisCo (patchalign, fairdisco)"),
    ("import-release", "builder.cli.import_release",
     "index a published cgDDI release by its file names, split it for a holdout, trainer CSVs"),
    ("evaluate", "builder.cli.evaluate",
     "the paper's tables, per-skin-tone fidelity and downstream utility of a built version"),
]
GENERATE_COMMANDS = [
    ("masks", "builder.cli.masks", "automatic lesion/skin masks for photos without one, with review sheets"),
    ("healthy", "builder.cli.healthy", "inpaint lesions away: healthy synthetics (cgDDI section 1)"),
    ("lesion-map", "builder.cli.lesion_map", "move real lesions onto healthy skin of other tones"),
    ("train-ti", "builder.cli.train_ti", "train textual-inversion disease tokens"),
    ("train-lora", "builder.cli.train_lora", "train per-disease LoRA with prior preservation"),
    ("sample", "builder.cli.sample", "sample semantic synthetics (disease x skin tone)"),
]


def _add(sub, name: str, module: str, help_text: str) -> None:
    from builder.cli.common import add_output_flags

    mod = importlib.import_module(module)
    p = sub.add_parser(name, help=help_text, description=(mod.__doc__ or help_text).strip(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    mod.add_arguments(p)
    add_output_flags(p)
    for action in p._actions:  # a single-value flag given twice is an error, not "the last one wins"
        if type(action) is argparse._StoreAction and action.option_strings:
            action.__class__ = _Once
    p.set_defaults(_run=mod.run)


class _Once(argparse._StoreAction):
    """A flag that takes one value refuses a second (`--source a --source b` would silently drop `a`)."""

    def __call__(self, parser, namespace, values, option_string=None):
        seen = namespace.__dict__.setdefault("_flags_given", set())
        if self.dest in seen:
            parser.error(f"{option_string} given twice ({getattr(namespace, self.dest)!s} and {values!s}): "
                         f"give {option_string} once")
        seen.add(self.dest)
        super().__call__(parser, namespace, values, option_string)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m builder",
        description="cgDDI toolkit: build, curate, publish and audit skin-tone-balanced "
                    "synthetic dermatology datasets.")
    parser.add_argument("--version", action="version", version=f"cgddi-toolkit {tool_version()}",
                        help="print the toolkit's version and exit")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="debug logging for the toolkit, info for libraries (-vv: debug for libraries too)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print only errors and each command's final summary (no progress bars, no tables)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_text in COMMANDS:
        _add(sub, name, module, help_text)
    if GENERATE_COMMANDS:
        gen = sub.add_parser("generate", help="run one generation step on its own",
                             description="Run one generation step on its own.")
        gsub = gen.add_subparsers(dest="step", metavar="STEP", required=True)
        for name, module, help_text in GENERATE_COMMANDS:
            _add(gsub, name, module, help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.quiet and args.verbose:
        parser.error("-q and -v contradict each other; give one")
    configure_output(args.verbose, args.quiet)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    return run_command(args)


def run_command(args: argparse.Namespace) -> int:
    """Run the parsed command. Input and environment errors print one line (the path and the fix) and
    exit 2; Ctrl-C prints one line and exits 130; exit 1 is left to the commands ("audit found a problem")."""
    from builder.cli.errors import INTERRUPTED, describe

    try:
        return int(args._run(args) or 0)
    except CgddiError as e:
        from builder.core.text import printable

        print(f"error: {printable(e, keep_newlines=True)}", file=sys.stderr)  # messages quote data: no escapes sent
        return 2
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 (anything that is not an environment error is re-raised)
        line = describe(e)
        if line is None:
            raise
        logging.getLogger(__name__).debug("environment error", exc_info=True)
        print(f"error: {line}", file=sys.stderr)
        return 2


# Third-party loggers that talk at INFO (one line per HTTP request, faiss's CPU-feature probing):
# WARNING unless -v. httpx2/httpcore2 are the names the Hub client's HTTP stack logs under here.
LIBRARY_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "huggingface_hub", "faiss", "urllib3",
                   "filelock", "fsspec", "PIL", "matplotlib")


def configure_output(verbose: int = 0, quiet: bool = False) -> None:
    """Logging levels, progress bars and -q, for this process and the worker processes it starts."""
    import os

    from builder.core.progress import progress_enabled, set_progress, set_quiet

    ours = logging.ERROR if quiet else logging.DEBUG if verbose else logging.INFO
    libraries = logging.ERROR if quiet else {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    if not logging.getLogger().handlers:  # called in-process by a host that set up logging: leave it
        logging.basicConfig(level=ours, format="%(levelname)s %(name)s: %(message)s")
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(libraries)
    if verbose:
        os.environ.setdefault("HF_HUB_VERBOSITY", "info" if verbose == 1 else "debug")  # read at its import
    set_quiet(quiet)
    if quiet:
        set_progress(False)
        os.environ["CGDDI_PROGRESS"] = "0"  # worker processes (forkserver pools) read these at import
        os.environ["CGDDI_QUIET"] = "1"
    else:
        os.environ.pop("CGDDI_QUIET", None)
    if not progress_enabled():  # the Hub client's and datasets' own bars too (both read these at import)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


def tool_version() -> str:
    """The installed distribution's version (the source tree's when run from a checkout)."""
    from importlib.metadata import PackageNotFoundError, version

    from builder.core.schema import TOOLKIT_VERSION

    try:
        installed = version("cgddi-toolkit")
    except PackageNotFoundError:
        return f"{TOOLKIT_VERSION} (not installed; running from {__file__.rsplit('/builder/', 1)[0]})"
    return installed if installed == TOOLKIT_VERSION else f"{TOOLKIT_VERSION} (installed metadata says {installed})"
