"""The Python API: `builder.build.build(...)` from a plain script without a main guard and from
`python -` (worker processes must not re-run the caller's script), and the library prints nothing."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A new user's script: no `if __name__ == "__main__":`, two worker processes, a small lesion budget.
SCRIPT = """\
import dataclasses
from builder.build import build
from builder.core.config import load_config

cfg = load_config("1.1")
cfg = dataclasses.replace(cfg, lesion_map=dataclasses.replace(cfg.lesion_map, budget=12))
result = build(cfg, out="{out}", workers=2)
print("ROWS", len(result.records), result.out_dir.name)
"""


def _run(args, tmp_path, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT), CGDDI_PROGRESS="0")
    return subprocess.run([sys.executable, *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=900, **kw)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["script", "stdin"])
def test_build_from_a_plain_script_and_stdin(tmp_path, how):
    out = tmp_path / "out"
    code = SCRIPT.format(out=out)
    if how == "script":
        (tmp_path / "make_cgddi.py").write_text(code)
        p = _run(["make_cgddi.py"], tmp_path)
    else:
        p = _run(["-"], tmp_path, input=code)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "LockError" not in p.stderr and "BrokenProcessPool" not in p.stderr
    assert p.stdout.splitlines() == [p.stdout.splitlines()[0]] and p.stdout.startswith("ROWS ")  # library: no print
    assert p.stdout.split()[2] == "1.1" and (out / "1.1" / "manifest.json").is_file()


def test_build_options_are_checked(tmp_path):
    from builder.build import build
    from builder.core.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown options \\['wokers'\\]"):
        build("1.1", out=tmp_path, wokers=2)
    with pytest.raises(ConfigError, match="no build config for version '9.9'"):
        build("9.9", out=tmp_path)


def test_main_file_is_hidden_only_while_a_pool_lives(monkeypatch):
    import types

    from builder.core.workers import _main_not_reimported

    main = types.ModuleType("__main__")
    main.__file__, main.__spec__ = "/somewhere/script.py", None
    monkeypatch.setitem(sys.modules, "__main__", main)
    with _main_not_reimported():
        from multiprocessing.spawn import get_preparation_data

        assert "init_main_from_path" not in get_preparation_data("w")
    assert main.__file__ == "/somewhere/script.py"
