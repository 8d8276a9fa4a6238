"""The package's floors (evo2kit/__init__.py lists them): a module imports only from its own floor or
those below, the library never imports the tutorial tooling, and no two modules import each other,
directly or around a circle. Imports inside functions count too: a lazy import is still an arrow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "evo2kit"

FLOORS = {"evo2kit.files": 0, "evo2kit.cli": 0, "evo2kit.distributed": 0, "evo2kit.model": 1, "evo2kit.data": 2,
          "evo2kit.checkpoints": 3, "evo2kit.api": 4, "evo2kit": 4, "evo2kit.analysis": 5, "evo2kit.training": 6,
          "evo2kit.tutorial": 7}
"""Module or sub-package -> its floor; ``evo2kit`` itself is the face (load_model and the model's classes)."""


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py")) if p.name != "__main__.py"}


def imports(path: Path, known: set[str]) -> set[str]:
    """The evo2kit modules that ``path`` imports anywhere in its body; ``from pkg import mod`` is an arrow
    to pkg.mod when that is a module, else to pkg."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "evo2kit"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "evo2kit":
            assert node.level == 0, f"{path}: relative import; write the module's full name"
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add(sub if sub in known else node.module)
    return out


def floor(name: str) -> int:
    while name not in FLOORS:
        name = name.rpartition(".")[0]
    return FLOORS[name]


def graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    mods = modules(root)
    return {name: imports(path, set(mods)) - {name} for name, path in mods.items()}


def circles(g: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while (w := stack.pop()) != v:
                on.discard(w)
                comp.append(w)
            on.discard(v)
            if comp:
                found.append(sorted([v, *comp]))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def arrows_up(g: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} (floor {floor(a)}) imports {b} (floor {floor(b)})"
                  for a, targets in g.items() for b in targets if floor(b) > floor(a))


def test_every_module_has_a_floor_and_no_arrow_runs_up_or_round():
    g = graph()
    assert len(g) > 30 and all(floor(m) >= 0 for m in g)
    assert arrows_up(g) == []
    assert circles(g) == []
    library = {m for m in g if floor(m) < FLOORS["evo2kit.tutorial"]}
    assert not [m for m in library if any(t.startswith("evo2kit.tutorial") for t in g[m])]
    model_floor = {m for m in g if m.startswith("evo2kit.model")}
    assert all(floor(t) <= 1 for m in model_floor for t in g[m])


def test_no_module_forwards_names_it_does_not_hold():
    """No module-level __getattr__: a moved name is imported from where it lives, not forwarded."""
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        assert not [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "__getattr__"], name


@pytest.mark.parametrize("case", ["up", "circle"])
def test_the_checks_catch_an_arrow_up_and_a_circle(tmp_path, case):
    """The same checks on a made-up package with the fault: they must see it."""
    pkg = tmp_path / "evo2kit"
    (pkg / "model").mkdir(parents=True)
    (pkg / "analysis").mkdir()
    for p in (pkg / "__init__.py", pkg / "model" / "__init__.py", pkg / "analysis" / "__init__.py"):
        p.write_text("")
    (pkg / "files.py").write_text("")
    (pkg / "analysis" / "a.py").write_text("from evo2kit.analysis import b\nfrom evo2kit.files import x\n")
    circle = "def f():\n    from evo2kit.analysis.a import y\n"
    (pkg / "analysis" / "b.py").write_text(circle if case == "circle" else "")
    (pkg / "model" / "m.py").write_text("import evo2kit.analysis.a\n" if case == "up" else "")
    g = graph(pkg)
    if case == "up":
        assert arrows_up(g) == ["evo2kit.model.m (floor 1) imports evo2kit.analysis.a (floor 5)"]
    else:
        assert circles(g) == [["evo2kit.analysis.a", "evo2kit.analysis.b"]] and arrows_up(g) == []
