"""Review decisions as data: append + read back, the latest row per id and reviewer, torn lines, kappa."""
import pytest

from builder.core.decisions import Decision, Decisions, append_decision, read_decisions
from builder.core.errors import ReviewError


def _d(i, decision="keep", criterion="", reviewer="ann", note=""):
    return Decision(i, decision, criterion, reviewer, note, "2026-01-01T00:00:00+00:00")


def test_append_then_read_back_with_header_and_quoting(tmp_path):
    path = tmp_path / "d.csv"
    append_decision(path, _d("healthy-1", note='odd, "shiny" patch'))
    append_decision(path, _d("healthy-2", "discard", "wrong_tone"))
    assert path.read_text().splitlines()[0] == "id,decision,criterion,reviewer,note,time"
    rows = read_decisions(path)
    assert [r.id for r in rows] == ["healthy-1", "healthy-2"]
    assert rows[0].note == 'odd, "shiny" patch'


def test_latest_decision_per_id_and_reviewer_counts(tmp_path):
    path = tmp_path / "d.csv"
    for d in (_d("a", "discard", "artefact"), _d("a"), _d("b", "discard", "lesion_remains"),
              _d("b", reviewer="bob"), _d("c", "discard", "bad_mask", reviewer="bob")):
        append_decision(path, d)
    dec = Decisions.read(path)
    assert dec.discarded() == {"b": "lesion_remains", "c": "bad_mask"}  # ann changed her mind on a
    assert dec.disagreements() == ["b"]
    s = dec.summary({"a", "b", "c"})
    assert (s["reviewed"], s["kept"], s["discarded"]) == (3, 1, 2)
    assert s["reviewers"] == ["ann", "bob"]


def test_a_torn_last_line_is_skipped_and_a_bad_row_is_named(tmp_path):
    path = tmp_path / "d.csv"
    append_decision(path, _d("a"))
    with path.open("a") as f:
        f.write("b,disc")  # the machine died mid-write
    assert [r.id for r in read_decisions(path)] == ["a"]
    path.write_text("id,decision,criterion,reviewer,note,time\na,discard,ugly,ann,,t\n")
    with pytest.raises(ReviewError, match="line 2.*'ugly'"):
        read_decisions(path)


def test_bad_decisions_are_refused_before_writing(tmp_path):
    with pytest.raises(ReviewError, match="criterion"):
        append_decision(tmp_path / "d.csv", _d("a", "discard", ""))
    with pytest.raises(ReviewError, match="id"):
        append_decision(tmp_path / "d.csv", _d("../etc"))
    assert not (tmp_path / "d.csv").exists()


def test_agreement_is_cohens_kappa_over_items_both_reviewed():
    from sklearn.metrics import cohen_kappa_score

    a = ["keep", "keep", "discard", "discard", "keep", "keep"]
    b = ["keep", "discard", "discard", "discard", "keep", "keep"]
    rows = [_d(f"x{i}", x, "artefact" if x == "discard" else "", "ann") for i, x in enumerate(a)]
    rows += [_d(f"x{i}", x, "artefact" if x == "discard" else "", "bob") for i, x in enumerate(b)]
    rows.append(_d("only-ann"))
    [pair] = Decisions.of(rows).agreement()
    assert pair["items"] == 6 and pair["agreement"] == round(5 / 6, 4)
    assert pair["kappa"] == round(cohen_kappa_score(a, b), 4) and 0 < pair["kappa"] < 1
    assert Decisions.of([_d("y"), _d("y", reviewer="bob")]).agreement()[0]["kappa"] is None  # one label only
