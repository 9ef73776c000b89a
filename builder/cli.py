"""Command-line surface: `build`, `generate <step>`, `curate`, `push`, `audit`, `export`, `evaluate`.

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
    ("build", "builder.build_cli", "build a dataset version end to end"),
    ("curate", "curation.curate_cli", "ingest, split, de-duplicate and remove leakage"),
    ("push", "builder.push_cli", "push a built version to the Hub as one commit + tag"),
    ("audit", "builder.audit_cli", "audit a version for leakage and integrity (exit 1 on failure)"),
    ("export", "builder.export_cli", "export train + test CSVs for PatchAlign24 or FairDisCo (patchalign, fairdisco)"),
    ("evaluate", "builder.evaluate_cli", "per-skin-tone fidelity and downstream utility of a built version"),
]
GENERATE_COMMANDS = [
    ("masks", "generation.masks.cli", "automatic lesion/skin masks for photos without one, with review sheets"),
    ("healthy", "generation.healthy_cli", "inpaint lesions away: healthy synthetics (cgDDI section 1)"),
    ("lesion-map", "generation.lesion_map_cli", "move real lesions onto healthy skin of other tones"),
    ("train-ti", "generation.semantic.train_ti_cli", "train textual-inversion disease tokens"),
    ("train-lora", "generation.semantic.train_lora_cli", "train per-disease LoRA with prior preservation"),
    ("sample", "generation.semantic.sample_cli", "sample semantic synthetics (disease x skin tone)"),
]


def _add(sub, name: str, module: str, help_text: str) -> None:
    mod = importlib.import_module(module)
    p = sub.add_parser(name, help=help_text, description=(mod.__doc__ or help_text).strip(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    mod.add_arguments(p)
    p.set_defaults(_run=mod.run)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m builder",
        description="cgDDI toolkit: build, curate, publish and audit skin-tone-balanced "
                    "synthetic dermatology datasets.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
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
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.quiet:
        import os

        from builder.core.progress import set_progress

        set_progress(False)
        os.environ["CGDDI_PROGRESS"] = "0"  # worker processes (forkserver pools) read it at import
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    return run_command(args)


def run_command(args: argparse.Namespace) -> int:
    """Run the parsed command. Input and environment errors print one line (the path and the fix) and
    exit 2; Ctrl-C prints one line and exits 130; exit 1 is left to the commands ("audit found a problem")."""
    from builder.cli_errors import INTERRUPTED, describe

    try:
        return int(args._run(args) or 0)
    except CgddiError as e:
        print(f"error: {e}", file=sys.stderr)
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
