"""The import rules of the house, checked on the source: stage packages (curation, generation, cards)
import only `builder.core` and libraries, `builder.core` imports no other project package, and no
module imports itself back through others (imports inside functions count)."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("builder", "curation", "generation", "cards")
STAGE_PACKAGES = ("curation", "generation", "cards")


def _modules() -> dict[str, Path]:
    out = {}
    for top in PACKAGES:
        for path in (REPO / top).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules `name` imports (the longest known prefix of each imported name)."""
    is_pkg = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[:len(pkg) - node.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for n in names:
            while n and n not in modules:
                n = n.rpartition(".")[0]
            if n and n != name:
                found.add(n)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_stage_packages_import_only_the_kernel_and_themselves():
    bad = [f"{m} -> {t}" for m, ts in _graph().items() for t in ts
           if m.split(".")[0] in STAGE_PACKAGES and t.split(".")[0] != m.split(".")[0]
           and not (t == "builder.core" or t.startswith("builder.core."))]
    assert not bad, f"stage packages importing another package: {bad}"


def test_the_kernel_imports_no_other_project_package():
    bad = [f"{m} -> {t}" for m, ts in _graph().items() if m.startswith("builder.core")
           for t in ts if not (t.startswith("builder.core") or t == "builder")]
    assert not bad, f"builder.core importing outside the kernel: {bad}"


def test_no_import_circles():
    graph = _graph()
    cycles = []
    state: dict[str, int] = {}  # 1 on the current path, 2 finished

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, f"import circles: {cycles[:3]}"


def test_the_checker_sees_a_planted_circle_and_a_stage_to_stage_import(tmp_path, monkeypatch):
    """The rules above can fail: the same functions on a planted package find what they must."""
    for rel, body in {"generation/__init__.py": "", "generation/a.py": "from generation import b\n",
                      "generation/b.py": "import generation.a\nfrom curation.x import y\n",
                      "curation/__init__.py": "", "curation/x.py": "y = 1\n", "builder/__init__.py": "",
                      "cards/__init__.py": ""}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(body)
    monkeypatch.setattr(__import__(__name__, fromlist=["REPO"]), "REPO", tmp_path)
    graph = _graph()
    assert "generation.b" in graph["generation.a"] and "generation.a" in graph["generation.b"]
    assert "curation.x" in graph["generation.b"]
