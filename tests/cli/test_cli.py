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


@pytest.mark.parametrize("argv", [["-q", "audit", "out/1.1"], ["audit", "out/1.1", "-q"], ["audit", "-q", "out/1.1"]])
def test_quiet_works_before_or_after_the_subcommand(argv):
    args = make_parser().parse_args(argv)
    assert args.quiet is True and args.verbose == 0


def test_verbose_after_the_subcommand_and_default_without_it():
    assert make_parser().parse_args(["audit", "x", "-vv"]).verbose == 2
    args = make_parser().parse_args(["audit", "x"])
    assert args.quiet is False and args.verbose == 0


@pytest.mark.parametrize("argv", [
    ["build", "--version", "1.1"], ["push", "--version", "1.1", "--repo-id", "o/n"],
    ["export", "patchalign", "--version", "1.1", "--out", "dest"], ["audit", "--version", "1.1"],
    ["evaluate", "--version", "1.1", "--model", "m"]])
def test_the_build_root_is_build_out_in_every_command(argv):
    from builder.cli.common import build_root

    args = make_parser().parse_args(argv + ["--build-out", "/tmp/root"])
    root = args.out if argv[0] == "build" else build_root(args)
    assert str(root) == "/tmp/root"


def test_push_still_accepts_its_old_out_spelling_with_a_warning(caplog):
    from builder.cli.common import build_root, layout_of

    args = make_parser().parse_args(["push", "--version", "1.1", "--repo-id", "o/n", "--out", "/tmp/old"])
    assert str(build_root(args)) == "/tmp/old" and "--build-out" in caplog.text
    assert str(layout_of(args).version_dir) == "/tmp/old/1.1"


def test_a_version_that_is_a_path_is_refused_by_every_command_that_takes_one(capsys):
    from builder.cli import main

    for argv in (["audit", "--version", "../x"], ["push", "--version", "../x", "--repo-id", "o/n", "--dry-run"],
                 ["export", "patchalign", "--version", "..", "--out", "/tmp/cgddi-never"]):
        assert main(argv) == 2
        assert "is not a version name" in capsys.readouterr().err
