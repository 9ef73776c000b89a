"""Dependencies match imports: what every build imports is required, the model stack is the
`[models]` extra, a default CPU build runs with the model stack unimportable, and a model command
without it says the pip command in one line. The README's set-up line still installs the tests' needs."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from builder.core.models import MODEL_PACKAGES

ROOT = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_model_stack_is_an_extra_and_mlcroissant_is_required():
    project = _project()
    required = {_name(r) for r in project["dependencies"]}
    models = {_name(r) for r in project["optional-dependencies"]["models"]}
    assert models == set(MODEL_PACKAGES) and not models & required
    assert "mlcroissant" in required  # every build writes croissant.json with it


def test_readme_and_ci_install_what_the_tests_need():
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set up (two commands)", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    install, tests = [line for line in setup.strip().splitlines() if line.strip()]
    assert install == 'pip install torch==2.13.0 -e ".[models,test]"' and tests == 'python -m pytest -m "not gpu and not hub"'
    assert install in (ROOT / ".ci" / "run").read_text()  # CI runs the README's line verbatim
    extras = set(re.search(r'\[([a-z,]+)\]', install).group(1).split(","))
    assert {"models", "test"} <= extras <= set(_project()["optional-dependencies"])


def _blocked(tmp_path: Path) -> dict:
    """An environment where every model-stack package fails to import, as when it is not installed
    (worker processes inherit it)."""
    block = tmp_path / "block"
    for name in MODEL_PACKAGES:
        (block / name).mkdir(parents=True)
        (block / name / "__init__.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{name}'\", name={name!r})\n")
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(block), str(ROOT)]), CGDDI_PROGRESS="0")


BUILD = """
import dataclasses, json, sys
from pathlib import Path
from builder.build import BuildOptions, build
from builder.core.config import load_config
cfg = load_config("1.1")
cfg = dataclasses.replace(cfg, lesion_map=dataclasses.replace(cfg.lesion_map, budget=12))
result = build(cfg, BuildOptions(out=Path(sys.argv[1]), workers=2))
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {%s})
print(json.dumps({"rows": len(result.records), "heavy": heavy}))
"""


@pytest.mark.slow
def test_default_cpu_build_imports_no_model_stack(tmp_path):
    code = BUILD % ", ".join(map(repr, sorted(MODEL_PACKAGES)))
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")], env=_blocked(tmp_path), cwd=tmp_path,
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    assert '"heavy": []' in p.stdout and (tmp_path / "out" / "1.1" / "croissant.json").is_file()
    # a model command over that version: one line with the pip command, no traceback
    e = subprocess.run([sys.executable, "-m", "builder", "evaluate", "--version", "1.1", "--folder",
                        str(tmp_path / "out" / "1.1"), "--model", "some/model", "--revision", "0" * 40],
                       env=_blocked(tmp_path / "again"), capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert e.returncode == 2 and "Traceback" not in e.stderr
    assert e.stderr.strip().splitlines()[-1].startswith("error: this command needs torch")
    assert 'pip install "cgddi-toolkit[models]"' in e.stderr


def test_a_missing_model_package_is_one_line_with_the_pip_command(tmp_path):
    p = subprocess.run([sys.executable, "-m", "builder", "generate", "train-ti", "--help"], env=_blocked(tmp_path),
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0  # --help imports nothing heavy
    from builder.cli.errors import describe

    line = describe(ModuleNotFoundError("No module named 'diffusers'", name="diffusers"))
    assert line and "\n" not in line and 'pip install "cgddi-toolkit[models]"' in line and "diffusers" in line
    assert describe(ModuleNotFoundError("No module named 'yaml'", name="yaml")) is None  # not ours to name
