"""The layers of the library never import upward (the layer table of the design, checked on the source).

Every ``import`` and ``from ... import`` statement of every module in ``irl``,
``human_models``, ``priors`` and ``demos`` is read with :mod:`ast` (also the
ones inside functions: a lazy import is still an arrow) and checked against
the table below. A module may import its own layer and the layers below it;
environment modules (``irl.envs``) may in addition never import a solver,
a planner of estimates or ``irl.compare``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("irl", "human_models", "priors", "demos")

#: Layer of every part of the library (the longest matching prefix wins), lowest first.
LAYERS = {
    "demos": 1, "irl._version": 1, "irl.plugins": 1,
    "irl.mdp": 2, "irl.planning": 2, "irl.autodiff": 2, "irl.rewards": 2, "irl.gym_tables": 2, "irl.metalevel": 2,
    "priors": 3, "human_models": 3,
    "irl.evidence": 4, "irl.solvers": 4, "irl.posterior": 4, "irl.plan": 4, "irl.active": 4, "irl.constraints": 4, "irl.robust": 4, "irl.side_effects": 4, "irl.norms": 4,
    "irl.metrics": 4, "irl.envs": 4, "irl.datasets": 4,
    "irl.compare": 5, "irl.metalevel.population": 5, "irl.lightning": 5, "irl.adapters": 5,
    "irl.workflows": 5,
    "irl.cli": 6, "irl.commands": 6, "irl.demo": 6,
    "irl": 6,  # the package itself re-exports everything: importing it is importing the top
}
#: What an environment module never imports, whatever its layer.
ENV_FORBIDDEN = ("irl.solvers", "irl.compare", "irl.plan", "irl.active", "irl.lightning", "irl.posterior")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _layer(module: str) -> int | None:
    best = None
    for prefix, layer in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, layer)
    return None if best is None else best[1]


def _is_module(name: str) -> bool:
    base = ROOT / Path(*name.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, imported module)`` of every import statement of a file that targets the library."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    me = _module_name(path)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                pkg = me.split(".") if path.name == "__init__.py" else me.split(".")[:-1]
                base = ".".join(pkg[:len(pkg) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # "from irl import planning" imports the module irl.planning
            names = [f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base for a in node.names]
        else:
            continue
        out += [(node.lineno, n) for n in names if n.split(".")[0] in PACKAGES]
    return out


def _library_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_every_module_has_a_layer():
    missing = [_module_name(p) for p in _library_files() if _layer(_module_name(p)) is None]
    assert not missing, f"modules without a layer (add them to LAYERS here and to the design's table): {missing}"


def test_no_upward_imports():
    bad = []
    for path in _library_files():
        me = _module_name(path)
        mine = _layer(me)
        for line, target in _imports(path):
            if target == me or (target != "irl" and me.startswith(target + ".")):
                continue  # itself, or its own package (the top package irl is the top layer)
            theirs = _layer(target)
            if theirs is None:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}, which has no layer")
            elif me != "irl" and theirs > mine:
                bad.append(f"{path.relative_to(ROOT)}:{line}: {me} (layer {mine}) imports {target} (layer {theirs})")
            if me.startswith("irl.envs") and any(target == f or target.startswith(f + ".") for f in ENV_FORBIDDEN):
                bad.append(f"{path.relative_to(ROOT)}:{line}: environment module {me} imports {target}")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_the_checker_sees_lazy_imports(tmp_path):
    src = "def f():\n    from irl.solvers import MaxEnt\n    import irl.compare\n"
    p = ROOT / "irl" / "envs" / "gridworld.py"  # any file: _imports only needs a path inside the library
    tree = ast.parse(src)
    found = [n.module if isinstance(n, ast.ImportFrom) else n.names[0].name for n in ast.walk(tree)
             if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert found == ["irl.solvers", "irl.compare"]
    assert _layer("irl.metalevel.population") == 5 and _layer("irl.metalevel.bernoulli") == 2
    assert _layer("irl.envs.mouselab") == 4 and _layer("human_models.cognitive") == 3
    assert _module_name(p) == "irl.envs.gridworld"


@pytest.mark.parametrize("cycle", [("demos.io", "demos.trajectories"), ("demos.io", "demos.deliberation"),
                                   ("irl.mdp", "irl.envs.gym_adapter")])
def test_former_circles_are_gone(cycle):
    a, b = cycle
    path = ROOT / Path(*a.split(".")).with_suffix(".py")
    assert not any(t == b or t.startswith(b + ".") for _, t in _imports(path)), f"{a} imports {b} again"
