"""The one record schema: pyarrow and datasets views agree, ids are stable, bad values are refused."""
import json

import datasets
import pytest

from builder.core.schema import (Generator, Record, arrow_schema, disease_names, features, fitzpatrick_to_tone,
                                 joined_diseases, make_sample_id, sample_seed, shard_disease_names)


def _rec(**kw):
    base = dict(sample_id="healthy-0", kind="healthy", skin_tone="dark", malignant=False, disease="healthy",
                source_ids=["ddi:000001"])
    base.update(kw)
    return Record(**base)


def test_arrow_schema_and_features_are_the_same_schema():
    assert datasets.Features.from_arrow_schema(arrow_schema()) == features()
    f = features()
    assert f["kind"].names == ["real", "healthy", "lesion_mapped", "semantic"]
    assert f["skin_tone"].names == ["light", "medium", "dark"]
    assert f["malignant"].names == ["benign", "malignant"]
    assert isinstance(f["image"], datasets.Image)


def test_row_round_trips_through_arrow_with_nulls():
    import pyarrow as pa

    rec = _rec(generator=Generator("opencv", adapters=("a.safetensors",)), params={"b": 1, "a": [1, 2]}, seed=7)
    table = pa.Table.from_pylist([rec.to_row(b"\x89PNG...")], schema=arrow_schema())
    row = table.to_pylist()[0]
    assert row["kind"] == 1 and row["skin_tone"] == 2 and row["malignant"] == 0
    assert row["params"] == '{"a":[1,2],"b":1}'
    assert row["generator"] == {"backend": "opencv", "model_id": None, "revision": None, "adapters": ["a.safetensors"]}
    assert row["base_id"] is None and row["fitzpatrick"] is None
    assert row["disease"] == disease_names().index("healthy") and row["has_lesion"] is False


def test_disease_is_a_classlabel_of_the_joined_classes_then_healthy():
    names = disease_names()
    assert len(joined_diseases()) == 65 and names == joined_diseases() + ("healthy",)
    assert features()["disease"].names == list(names)
    assert disease_names(["melanoma", "healthy"]) == names  # DDI-labelled rows: DDI's whole list, whatever is present
    # a class outside DDI's: the source's own classes, those the rows carry, then healthy
    assert disease_names(["melanoma", "zz unknown", "aa other"]) == ("aa other", "melanoma", "zz unknown", "healthy")
    schema = arrow_schema(disease_names(["aa other"]))
    assert shard_disease_names(schema) == ("aa other", "healthy")
    assert arrow_schema().remove_metadata().equals(schema.remove_metadata())  # names live in metadata only
    lesion = _rec(kind="lesion_mapped", disease="melanoma", malignant=True)
    assert lesion.to_row(b"")["has_lesion"] is True
    with pytest.raises(ValueError, match="aa other"):
        _rec(disease="aa other").to_row(b"")  # not among the default names: named, with the fix


def test_json_round_trip():
    rec = _rec(generator=Generator("diffusers", "m", "r"), params={"x": 1})
    assert Record.from_json(rec.to_json()) == rec


def test_sample_id_is_stable_and_lineage_sensitive():
    a = make_sample_id("lesion_mapped", "abc", {"base": "x", "donor": "y"})
    assert a == make_sample_id("lesion_mapped", "abc", {"donor": "y", "base": "x"})
    assert a != make_sample_id("lesion_mapped", "abc", {"base": "x", "donor": "z"})
    assert a.startswith("lesion_mapped-") and len(a) == len("lesion_mapped-") + 16
    assert sample_seed(a) == sample_seed(a) != sample_seed(a, 1)


@pytest.mark.parametrize("field,value", [("kind", "fake"), ("skin_tone", "olive"), ("split", "dev"), ("source_ids", [])])
def test_bad_values_are_refused_with_the_value_named(field, value):
    with pytest.raises(ValueError, match=repr(value) if value else "source_ids"):
        _rec(**{field: value})


def test_fitzpatrick_groups():
    assert [fitzpatrick_to_tone(i) for i in range(1, 7)] == ["light", "light", "medium", "medium", "dark", "dark"]
    with pytest.raises(ValueError, match="-1"):
        fitzpatrick_to_tone(-1)


def test_public_model_id_hides_local_paths(tmp_path):
    from builder.core.schema import public_model_id

    assert public_model_id("stabilityai/stable-diffusion-2-1-base") == "stabilityai/stable-diffusion-2-1-base"
    assert public_model_id(str(tmp_path / "my-sd")) == "local:my-sd"
    assert public_model_id("./models/sd/") == "local:sd"
    assert public_model_id(None) is None


def test_patient_and_real_parent_are_typed_lineage_columns_not_params():
    """Lineage that code reads: the patient id groups splits, a healthy row names its real parent."""
    from builder.core.schema import COLUMNS, arrow_schema, features_dict

    for col in ("patient_id", "parent_id"):
        assert col in COLUMNS and col in arrow_schema().names and features_dict()[col] == {"dtype": "string",
                                                                                          "_type": "Value"}
    rec = Record(sample_id="healthy-1", kind="healthy", skin_tone="dark", malignant=False, disease="healthy",
                 source_ids=["ddi:000001"], patient_id="p7", parent_id="real-abc")
    row = rec.to_row(b"\x89PNG")
    assert row["patient_id"] == "p7" and row["parent_id"] == "real-abc" and row["params"] is None
    assert Record.from_json(rec.to_json()) == rec


def test_row_follows_the_declared_order_and_hand_offs_stay_unpublished():
    from builder.core.schema import COLUMNS, PUBLISHED_COLUMNS, MaskRejection

    rec = _rec(kind="lesion_mapped", disease="melanoma", malignant=True, plan_row=3, base_source_ids=("ddi:1",),
               donor_source_ids=("ddi:2",), mask_rejection=MaskRejection("mask_low_confidence", "0.2 < 0.4"))
    row = rec.to_row(b"")
    assert tuple(row) == COLUMNS == tuple(c.name for c in PUBLISHED_COLUMNS)
    assert not {"plan_row", "base_source_ids", "donor_source_ids", "mask_rejection"} & set(row)
    assert row["params"] is None
    back = Record.from_json(json.loads(json.dumps(rec.to_json())))
    assert back == rec and back.base_source_ids == ("ddi:1",) and back.mask_rejection.reason == "mask_low_confidence"


def test_a_record_stored_before_the_hand_off_fields_takes_them_from_its_params():
    old = _rec(kind="lesion_mapped", disease="melanoma", params={"plan_row": 5, "base_source_ids": ["ddi:1"],
                                                                 "donor_source_ids": ["ddi:2"]}).to_json()
    for key in ("plan_row", "base_source_ids", "donor_source_ids", "mask_rejection"):
        del old[key]
    rec = Record.from_json(old)
    assert (rec.plan_row, rec.base_source_ids, rec.donor_source_ids) == (5, ("ddi:1",), ("ddi:2",))
    real = _rec(kind="real", disease="melanoma", params={"mask_rejected": "mask_low_confidence",
                                                         "mask_rejected_detail": "0.2"}).to_json()
    del real["mask_rejection"]
    assert Record.from_json(real).mask_rejection.detail == "0.2"


def test_column_views_agree_on_types():
    from builder.core.schema import PUBLISHED_COLUMNS

    cols = {c.name: c for c in PUBLISHED_COLUMNS}
    assert (cols["disease"].croissant_type, cols["disease"].card_type) == ("sc:Integer", "ClassLabel")
    assert (cols["has_lesion"].croissant_type, str(cols["has_lesion"].arrow_type())) == ("sc:Boolean", "bool")
    assert cols["source_ids"].card_type == "list of string" and cols["generator"].croissant_type is None
    assert cols["auto_masks"].leaf_paths()[-1] == "auto_masks.list.element.confidence"
    assert cols["image"].leaf_paths() == ["image.bytes", "image.path"]
    assert [c.name for c in PUBLISHED_COLUMNS if c.lineage][:3] == ["source_ids", "patient_id", "parent_id"]


def test_no_other_module_spells_the_column_list(repo_root):
    """A list, tuple, set or dict naming most published columns outside schema.py is a second declaration."""
    import ast

    from builder.core.schema import COLUMNS

    spelled = []
    for folder in ("builder", "cards", "curation", "generation"):
        for path in sorted((repo_root / folder).rglob("*.py")):
            if path == repo_root / "builder" / "core" / "schema.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                items = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", None) \
                    if isinstance(node, (ast.List, ast.Tuple, ast.Set)) else None
                names = {n.value for n in items or () if isinstance(n, ast.Constant)} & set(COLUMNS)
                if len(names) > len(COLUMNS) // 2:
                    spelled.append(f"{path.relative_to(repo_root)}:{node.lineno}")
    assert not spelled


def test_a_column_of_an_unknown_type_is_refused():
    from builder.core.schema import Column

    with pytest.raises(ValueError, match="'int8'"):
        Column("grade", "int8", "a ClassLabel stored as int8", labels=("low", "high"))
    with pytest.raises(ValueError, match="'float32'"):
        Column("score", "float32", "no such value type")
