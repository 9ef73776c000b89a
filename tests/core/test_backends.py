"""One registry of backends, one contract, one model-pinning policy; a new backend is one class + one registry line."""
from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import types

import pytest
import yaml

from builder.core import backends as B
from builder.core.config import CONFIG_DIR, CurationConfig, HealthyConfig, MasksConfig, SemanticConfig, load_config
from builder.core.errors import ConfigError
from builder.core.models import PinnedModel, pin_model

SECTIONS = {"healthy": HealthyConfig, "masks": MasksConfig, "semantic": SemanticConfig, "curation": CurationConfig}


class DummyInpainting(B.Backend):
    """A backend living outside the stage packages: only the registry line makes it known."""

    kind, name = "inpainting", "dummy"
    settings = ("model_id", "steps")

    @classmethod
    def check(cls, cfg) -> None:
        if cfg.steps > 100:
            raise ConfigError(f"healthy.steps={cfg.steps}: the dummy backend takes at most 100")

    @classmethod
    def card_text(cls, cfg) -> str:
        return f"dummy fill in {cfg.steps} steps"


@pytest.fixture
def dummy(monkeypatch):
    monkeypatch.setitem(B.REGISTRY, ("inpainting", "dummy"), f"{__name__}:DummyInpainting")


def _config_file(tmp_path, **healthy) -> str:
    raw = yaml.safe_load((CONFIG_DIR / "1.1.yaml").read_text())
    raw["healthy"].update(healthy)
    path = tmp_path / "v.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_registry_names_and_lookup():
    from curation.source.automasks.cpu import CpuBackend
    from generation.healthy.backends import DiffusersBackend, OpenCVBackend

    assert B.names("inpainting") == ("opencv", "diffusers", "kandinsky22") and B.names("mask") == ("cpu", "learned", "sam3")
    assert B.names("sampling") == ("diffusers",) and B.names("embedding") == ("transformers",)
    assert B.backend_class("inpainting", "opencv") is OpenCVBackend
    assert B.backend_for("inpainting", HealthyConfig(backend="diffusers")) is DiffusersBackend
    assert B.backend_for("mask", MasksConfig()) is CpuBackend
    assert B.model_backend("inpainting") == "diffusers" and B.model_backend("mask", "cpu") == "learned"
    with pytest.raises(ValueError, match="kind"):
        B.names("vocoder")


@pytest.mark.parametrize("kind, name, listed", [("inpainting", "gan", "opencv, diffusers"),
                                                ("mask", "sam", "cpu, learned, sam3")])
def test_unknown_names_are_refused_listing_the_registered_ones(kind, name, listed, tmp_path):
    with pytest.raises(ConfigError, match=f"{B.where(kind)}='{name}' is not a registered {kind} backend; "
                                          f"use one of {listed}"):
        B.backend_class(kind, name)
    raw = yaml.safe_load((CONFIG_DIR / "1.1.yaml").read_text())
    raw[B.KINDS[kind].section]["backend"] = name
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=f"bad.yaml: {B.where(kind)}='{name}'.*{listed}"):
        load_config(str(tmp_path / "bad.yaml"))


@pytest.mark.parametrize("kind, name", sorted(B.REGISTRY))
def test_every_registered_backend_imports_and_keeps_the_contract(kind, name):
    cls = B.backend_class(kind, name)
    assert issubclass(cls, B.Backend) and B.Backend in cls.__mro__[1:2]  # one level: Backend is the parent
    assert (cls.kind, cls.name) == (kind, name)
    section_cls = SECTIONS[B.KINDS[kind].section]
    fields = {f.name for f in dataclasses.fields(section_cls)}
    assert set(cls.settings) <= fields, f"{cls.__name__}.settings names no field of {section_cls.__name__}"
    section = section_cls()
    text = cls.card_text(section)
    assert isinstance(text, str) and text and "\n" not in text
    json.dumps(cls.fingerprint(section, batch_size=2))  # JSON-able: it goes into the stage key
    assert isinstance(cls.uses_seed(section), bool) and isinstance(cls.prompted, bool)


def test_the_registry_imports_no_backend_module():
    code = ("import sys, builder.core.backends, builder.core.config as c; c.load_config('1.2');"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('generation', 'curation', 'cards')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_registered_extra_backend_is_usable_by_config_validation_and_the_stage(dummy, tmp_path):
    from generation.healthy.stage import check, stage_key

    cfg = load_config(_config_file(tmp_path, backend="dummy", steps=7))
    assert cfg.healthy.backend == "dummy" and "dummy" in B.names("inpainting")
    assert B.backend_for("inpainting", cfg.healthy) is DummyInpainting
    check(cfg.healthy)  # the stage's check reaches the backend's own
    with pytest.raises(ConfigError, match="at most 100"):
        check(dataclasses.replace(cfg.healthy, steps=101))
    assert set(stage_key(cfg.healthy, 16, 4, {}).settings) == {"config", "shard_size", "published_mask"}
    assert B.model_backend("inpainting", "dummy") == "dummy"  # `--model` keeps a configured backend that takes one
    assert B.model_backend("inpainting", "opencv") == "diffusers"  # else the first registered one that does
    entry = B.card_entries(cfg)["healthy", "dummy"]
    assert entry.text == "dummy fill in 7 steps" and entry.settings == ("model_id", "steps")


def test_the_card_describes_generators_by_their_backends_sentences(dummy, tmp_path):
    from cards.text import CardFacts, _healthy_line, _stage_params

    cfg = load_config(_config_file(tmp_path, backend="dummy"))
    gens = [("healthy", "dummy", "-", "-", 3), ("healthy", "mystery", "-", "-", 1)]
    facts = CardFacts(cfg=cfg, records=[], generators=gens, sources=[], generator_entries=B.card_entries(cfg))
    line = _healthy_line(facts)
    assert line.startswith("Healthy: dummy fill in 30 steps; backend `mystery`; inpainted region")
    assert "OpenCV" not in line
    rows = [types.SimpleNamespace(kind="healthy")]  # the parameters block reads only the rows' kinds
    healthy = _stage_params(dataclasses.replace(facts, records=rows))["healthy"]
    assert {"steps", "model_id"} <= set(healthy)  # the dummy reads them (diffusers too, which did not run)
    assert not {"crop_size", "opencv_radius", "opencv_method"} & set(healthy)  # only idle backends read these


def test_stage_keys_keep_their_shape():
    from generation.healthy.stage import stage_key

    assert set(stage_key(HealthyConfig(), 16, 4, {}).settings) == {"config", "shard_size", "published_mask"}
    diff = stage_key(HealthyConfig(backend="diffusers", model_id="m", revision="r"), 16, 4, {}).settings
    assert diff["batch_size"] == 4  # batch composition changes diffusers pixels


# -- model pinning ----------------------------------------------------------------------------------
def _folder(path, payload: bytes = b"weights"):
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"a": 1}')
    (path / "sub").mkdir()
    (path / "sub" / "model.safetensors").write_bytes(payload)
    return path


def test_a_local_folder_is_pinned_by_its_content(tmp_path):
    a = pin_model(str(_folder(tmp_path / "one" / "tiny")), None, setting="x.revision")
    assert a.local and a.name == "local:tiny" and a.revision.startswith("local-") and a.load_revision is None
    assert a.identity == a.revision and a.source == str(tmp_path / "one" / "tiny")
    assert pin_model(a.source, None, setting="x.revision") == a  # stable
    moved = shutil.copytree(tmp_path / "one" / "tiny", tmp_path / "two" / "tiny")
    b = pin_model(str(moved), None, setting="x.revision")
    assert (b.revision, b.identity, b.name) == (a.revision, a.identity, a.name)  # not where it lies
    (moved / "sub" / "model.safetensors").write_bytes(b"weightz")
    assert pin_model(str(moved), None, setting="x.revision").revision != a.revision
    assert pin_model(a.source, "abc123", setting="x.revision").revision == a.revision  # content wins


def test_a_hub_id_needs_a_revision(tmp_path):
    assert pin_model("org/model", "0123abc", setting="masks.revision") == PinnedModel(
        "org/model", "org/model", "0123abc", local=False)
    pinned = pin_model("org/model", "0123abc", setting="masks.revision")
    assert pinned.load_revision == "0123abc" and pinned.identity == "org/model"
    with pytest.raises(ConfigError, match=r"'org/model' is a Hub id without a pinned revision: set masks\.revision "
                                          r"to its commit \(--revision <commit>\)"):
        pin_model("org/model", None, setting="masks.revision")
    with pytest.raises(ConfigError, match="pass --clip-revision <commit>"):
        pin_model("org/clip", None, setting="--clip-revision", flag="--clip-revision")
    with pytest.raises(ConfigError, match="does not exist"):
        pin_model(str(tmp_path / "missing"), "abc", setting="healthy.revision")


@pytest.mark.parametrize("check, setting", [
    (lambda: B.backend_for("inpainting", HealthyConfig(backend="diffusers", model_id="org/m")).check(
        HealthyConfig(backend="diffusers", model_id="org/m")), "healthy.revision"),
    (lambda: B.backend_class("mask", "learned").check(MasksConfig(backend="learned", model_id="org/m")),
     "masks.revision"),
    (lambda: B.backend_class("mask", "sam3").check(MasksConfig(backend="sam3", model_id="org/m")),
     "masks.revision"),
    (lambda: B.backend_class("sampling", "diffusers").check(SemanticConfig(model_id="org/m")), "semantic.revision"),
    (lambda: B.backend_class("embedding", "transformers").check(CurationConfig(embedding_model="org/m")),
     "curation.embedding_revision"),
])
def test_every_loader_refuses_an_unpinned_hub_id_before_loading(check, setting):
    with pytest.raises(ConfigError, match=f"Hub id without a pinned revision: set {setting}"):
        check()
