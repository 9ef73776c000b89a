"""`review` on the command line: the build root and version flags, one-line errors, `--flags-only`."""
import csv

from builder.cli import main, make_parser
from tests.review_fixtures import make_work


def test_review_takes_the_build_root_and_refuses_a_path_as_version(capsys, tmp_path):
    args = make_parser().parse_args(["review", "--version", "1.1", "--build-out", "/tmp/root"])
    assert str(args.build_out) == "/tmp/root" and args.host is None and args.port == 8765
    assert main(["review", "--version", "../x", "--build-out", str(tmp_path)]) == 2
    assert "is not a version name" in capsys.readouterr().err


def test_review_of_a_version_never_built_says_to_build_it(capsys, tmp_path):
    assert main(["review", "--version", "1.1", "--build-out", str(tmp_path), "--flags-only"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "build the version first" in err


def test_flags_only_writes_every_measured_flag_as_csv(capsys, tmp_path):
    ids = make_work(tmp_path / ".work" / "1.1")
    out = tmp_path / "flags.csv"
    assert main(["-q", "review", "--version", "1.1", "--build-out", str(tmp_path), "--flags-only",
                 "--flags-out", str(out)]) == 0
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert {r["queue"] for r in rows} == {"healthy", "masks", "lesion_map"}
    assert {r["id"] for r in rows if r["queue"] == "healthy"} == set(ids["healthy"])
    assert {r["flag"] for r in rows if r["queue"] == "masks"} == {
        "mask_touches_frame", "mask_covers_frame", "mask_non_skin_colour", "mask_text_like"}
    assert str(out) in capsys.readouterr().out
