"""The package's layers, read from the source: lower layers never import higher ones, the
modules import each other without cycles, and no private name crosses a module.

Every import counts, the ones inside functions too (a lazy import is still a dependency).
The layers, lowest first, are listed in the README's "Layers" section.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: folder (or top-level module) -> layer; lower numbers are lower layers.  A module's layer is its
#: folder's: ``bayes_gmm/em/engine.py`` is in layer 1.
FOLDER_LAYERS = {
    # the model: the numbers of the mixture and its prior; errors and built-in data beside it
    "bayes_gmm.exceptions": 0,
    "bayes_gmm.datasets": 0,
    "bayes_gmm.model": 0,
    # EM: validation, the engine and its Dask backend, the estimators, model selection
    "bayes_gmm.em": 1,
    "em_baseline": 1,
    # reading and writing fitted models; the posterior in PyMC
    "bayes_gmm.io": 2,
    "bayes_gmm.bayes": 2,
    # ArviZ diagnostics, then figures
    "bayes_gmm.diagnostics": 3,
    "bayes_gmm.plotting": 4,
    # the command line and its demo story
    "bayes_gmm.cli": 5,
}
PACKAGES = ("bayes_gmm", "em_baseline")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _layer(name: str) -> int | None:
    """The layer of the folder (or top-level module) that holds module ``name``."""
    for prefix, layer in FOLDER_LAYERS.items():
        if name == prefix or name.startswith(prefix + "."):
            return layer
    return None


LAYERS = {name: layer for name in _modules() if (layer := _layer(name)) is not None}


def _imports(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import of the package's modules."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    known = _modules()
    typing_only = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
        for stmt in block.body
        for n in ast.walk(stmt)
    }
    out = []
    for node in ast.walk(tree):
        if id(node) in typing_only:  # annotations only: no dependency at run time
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] in PACKAGES]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.split(".")[0] not in PACKAGES:
                continue
            names = [a.name for a in node.names]
            # ``from . import x`` imports the module bayes_gmm.x
            modules = [f"{target}.{n}" for n in names if f"{target}.{n}" in known]
            out += [(m, [], node.lineno) for m in modules]
            rest = [n for n in names if f"{target}.{n}" not in known]
            if rest:
                out.append((target, rest, node.lineno))
    return out


def test_every_module_has_a_layer():
    missing = sorted(set(_modules()) - set(LAYERS) - set(PACKAGES))
    assert not missing, f"modules outside the layer folders of tests/test_layers.py (and the README): {missing}"


def test_the_package_top_level_holds_only_layer_folders():
    """Besides ``__init__``, the errors and the built-in data, every module lives in a layer folder."""
    top = sorted(p.stem for p in (ROOT / "bayes_gmm").glob("*.py") if p.stem != "__init__")
    assert top == ["datasets", "exceptions"], top
    folders = sorted(p.name for p in (ROOT / "bayes_gmm").iterdir() if (p / "__init__.py").exists())
    assert folders == sorted(f.rpartition(".")[2] for f in FOLDER_LAYERS if f.count(".") == 1 and f.startswith("bayes_gmm.") and (ROOT / f.replace(".", "/")).is_dir())


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_no_import_of_a_higher_layer(name):
    path = _modules()[name]
    bad = [
        f"line {line}: {target}"
        for target, _, line in _imports(name, path)
        if target in LAYERS and LAYERS[target] > LAYERS[name]
    ]
    assert not bad, f"{name} (layer {LAYERS[name]}) imports a higher layer: {bad}"


def test_no_import_cycles():
    graph = {
        name: {t for t, _, _ in _imports(name, path) if t in LAYERS and t != name}
        for name, path in _modules().items()
        if name in LAYERS
    }
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_no_private_name_crosses_a_module(name):
    path = _modules()[name]
    tree = ast.parse(path.read_text())
    bad = [
        f"line {line}: {target}.{n}"
        for target, names, line in _imports(name, path)
        for n in names
        if n.startswith("_") and not (n.startswith("__") and n.endswith("__"))
    ]
    # module._name through an imported module object (``from . import posterior as _post``)
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] in PACKAGES):
            for a in node.names:
                aliases[a.asname or a.name] = a.name
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in PACKAGES:
                    aliases[a.asname or a.name] = a.name
    known = {m.rpartition(".")[2] for m in _modules()}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and aliases[node.value.id].rpartition(".")[2] in known
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            bad.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    assert not bad, f"{name} uses private names of other modules: {bad}"
