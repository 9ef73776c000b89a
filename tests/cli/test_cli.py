"""Every command answers --help quickly without importing torch, diffusers, transformers or datasets."""
import subprocess
import sys

import pytest

from builder.cli import COMMANDS, GENERATE_COMMANDS, make_parser

HEAVY = ("torch", "diffusers", "transformers", "datasets")


def _commands():
    yield []
    for name, _, _ in COMMANDS:
        yield [name]
    for name, _, _ in GENERATE_COMMANDS:
        yield ["generate", name]


@pytest.mark.parametrize("argv", list(_commands()), ids=lambda a: " ".join(a) or "top")
def test_help_answers_without_heavy_imports(argv):
    code = ("import sys; from builder.cli import main\n"
            "try:\n    main(%r)\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "heavy = [m for m in %r if m in sys.modules]\n"
            "assert not heavy, heavy\n") % (argv + ["--help"], HEAVY)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout


def test_unknown_version_is_a_clean_error(capsys):
    from builder.cli import main

    assert main(["build", "--version", "0.0", "--out", "/nonexistent-cgddi"]) == 2
    err = capsys.readouterr().err
    assert "no build config for version '0.0'" in err and "1.1" in err


def test_parser_lists_all_commands():
    text = make_parser().format_help()
    for name, _, _ in COMMANDS:
        assert name in text
