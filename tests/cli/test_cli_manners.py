"""CLI manners: --version, bars only on a terminal, quiet library loggers, -q, where audit writes, .gitignore."""
from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys

import pytest

from builder.core import progress as P
from tests.conftest import REPO_ROOT

HEAVY = ("torch", "diffusers", "transformers", "datasets")


def _py(code: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
                          **kw)


def test_version_flag_prints_the_toolkit_version_without_heavy_imports():
    from builder.core.schema import TOOLKIT_VERSION

    code = ("import sys; from builder.cli import main\n"
            "try:\n    main(['--version'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\nassert not heavy, heavy\n")
    proc = _py(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"cgddi-toolkit {TOOLKIT_VERSION}")


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_bars_only_on_a_terminal(monkeypatch):
    monkeypatch.setattr(P, "_FORCED", None)
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stderr", pipe)
    assert not P.progress_enabled()
    assert list(P.progress(range(5), desc="x")) == list(range(5)) and pipe.getvalue() == ""
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    assert P.progress_enabled()
    assert list(P.progress(range(5), desc="bar-on-a-tty")) == list(range(5))
    assert "bar-on-a-tty" in tty.getvalue()  # tqdm drew on the "terminal"
    monkeypatch.setenv("CGDDI_PROGRESS", "0")
    assert P._forced_from_env() is False
    monkeypatch.setenv("CGDDI_PROGRESS", "1")
    assert P._forced_from_env() is True


@pytest.mark.parametrize("verbose,faiss_lines", [(0, False), (1, True)])
def test_library_loggers_at_warning_unless_verbose(verbose, faiss_lines):
    """faiss announces its CPU-feature probing at INFO on import: silent by default, shown with -v."""
    proc = _py(f"from builder.cli import configure_output; configure_output({verbose})\n"
               "import logging; logging.getLogger('builder.test').info('our info line')\n"
               "import faiss\n")
    assert proc.returncode == 0, proc.stderr
    assert "our info line" in proc.stderr
    assert ("faiss.loader" in proc.stderr) == faiss_lines, proc.stderr


def test_quiet_keeps_errors_and_the_final_summary_only():
    proc = _py("from builder.cli import configure_output; configure_output(0, quiet=True)\n"
               "import logging; log = logging.getLogger('builder.test')\n"
               "log.info('an info line'); log.warning('a warning line'); log.error('an error line')\n"
               "from builder.core.progress import say, progress\n"
               "say('a detail line'); list(progress(range(3), desc='a bar')); print('the final summary')\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "the final summary\n"
    assert "an error line" in proc.stderr
    assert "info line" not in proc.stderr and "warning line" not in proc.stderr and "a bar" not in proc.stderr


def test_quiet_reaches_worker_processes():
    proc = _py("import os; os.environ['CGDDI_QUIET'] = '1'\n"
               "import logging, builder.core.progress\n"
               "logging.getLogger('curation.x').warning('worker warning')\n"
               "logging.getLogger('curation.x').error('worker error')\n")
    assert "worker warning" not in proc.stderr and "worker error" in proc.stderr


def _readme_outputs() -> set[str]:
    """Paths inside the repo that the README's commands write (relative output arguments)."""
    text = (REPO_ROOT / "README.md").read_text()
    blocks = "\n".join(re.findall(r"```bash\n(.*?)```", text, flags=re.S))
    found = set(re.findall(r"--(?:out|work-dir|report)\s+([A-Za-z_.][\w./-]*)", blocks))
    return {f.rstrip("/") for f in found if not f.startswith("/")}


def test_gitignore_covers_what_the_readme_commands_write(tmp_path):
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout")
    written = _readme_outputs()
    assert {"models", "semantic", "patchalign"} <= written, written  # the parser still sees the README
    # + build's default --out, what `pip install -e` and pytest write, and audit's default report
    written |= {"out", "build", "cgddi_toolkit.egg-info", ".pytest_cache", "builder/__pycache__"}
    # a file inside each folder: git matches a folder pattern (`/out/`) only on what lies inside it
    for path in sorted(f"{w}/x.file" for w in written) + ["out/.work/1.1/audit_report.json"]:
        proc = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=REPO_ROOT)
        assert proc.returncode == 0, f"{path} (written by a README command) is not covered by .gitignore"


def test_audit_report_defaults_to_the_versions_work_folder(tmp_path, monkeypatch):
    from builder.cli.audit import default_report

    version = tmp_path / "out" / "1.1"
    version.mkdir(parents=True)
    assert default_report(str(version), None) == tmp_path / "out" / ".work" / "1.1" / "audit_report.json"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_report("lab/cgddi", "v1.1") == \
        tmp_path / "cache" / "cgddi-toolkit" / "audit" / "lab__cgddi@v1.1" / "audit_report.json"
