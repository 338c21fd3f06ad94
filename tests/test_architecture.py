"""The layered layout holds: no upward imports, no cycles between subpackages, complete faces.

Independent truth: the import statements themselves, read with `ast` (never by importing the
package), including imports inside functions and ``if TYPE_CHECKING:`` blocks, and string imports
(``importlib.import_module("bayestumor.x")``, ``pytest.importorskip(...)``). Layers, bottom to top;
a module may import only its own layer or a lower one:

0. ``errors``, ``_custom_types``, ``utils``, ``config``
1. ``imaging``
2. ``forward`` (with ``forward.surrogate``)
3. ``model``
4. ``inference``
5. ``posterior``
6. ``workflows``
7. ``cohort``, ``radiotherapy`` (radiotherapy is independent: layer 0 only)
8. ``cli``

``bayestumor/__init__.py`` is the public face and may import any layer. A private module
``bayestumor.X._y`` may be imported only from inside ``bayestumor/X/``; tests, benchmarks and
notebooks use public faces only.

Run ``python tests/test_architecture.py`` (or ``pytest tests/test_architecture.py -s``) to print the
subpackage graph.
"""

from __future__ import annotations

import ast
import itertools
import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "bayestumor"

# Subpackage (first name below ``bayestumor``) -> layer.
LAYERS: dict[str, int] = {
    "config": 0,  # plain-data configuration (priors, calibration options): pure Python
    "errors": 0,
    "_custom_types": 0,
    "utils": 0,
    "imaging": 1,
    "forward": 2,
    "model": 3,
    "inference": 4,
    "posterior": 5,
    "workflows": 6,
    "cohort": 7,
    "radiotherapy": 7,
    "cli": 8,
}
# Subpackages that may import only these layers, whatever their own layer.
RESTRICTED: dict[str, frozenset[int]] = {"radiotherapy": frozenset({0})}
# Folders outside the package that must use public faces only (and the Markdown examples).
CLIENT_DIRS = ("tests", "benchmarks", "notebooks", "scripts")

# Call names whose first string argument is a module to import.
_IMPORT_CALLS = {"import_module", "importorskip", "__import__", "find_spec"}
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


@dataclass(frozen=True)
class Source:
    """One unit of Python source: a file, or a notebook's code cell."""

    location: str  # printed in reports, e.g. "bayestumor/model/_problem.py" or "nb.ipynb[cell 3]"
    module: str  # dotted module name, e.g. "bayestumor.model._problem"
    is_package: bool  # an ``__init__.py`` (relative imports resolve against the module itself)
    text: str


@dataclass(frozen=True)
class Edge:
    """One import found in a source: `importer` imports module `target` at `location:line`."""

    importer: str
    target: str
    location: str
    line: int
    statement: str
    kind: str = "import"  # "import", "string" (import_module & co.) or "attribute"

    def where(self) -> str:
        return f"{self.location}:{self.line}: {self.statement}"


# ----------------------------------------------------------------------------------- sources


def module_name(path: Path, root: Path = ROOT) -> tuple[str, bool]:
    """Dotted module name of a .py file below `root`, and whether it is a package ``__init__``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def python_sources(folder: Path, root: Path = ROOT) -> list[Source]:
    """Every .py file below `folder` (caches and virtual environments skipped)."""
    sources = []
    for path in sorted(folder.rglob("*.py")):
        if any(part.startswith(".") or part == "__pycache__" for part in path.parts):
            continue
        module, is_package = module_name(path, root)
        location = str(path.relative_to(root))
        sources.append(Source(location, module, is_package, path.read_text(encoding="utf-8")))
    return sources


def notebook_sources(folder: Path, root: Path = ROOT) -> list[Source]:
    """Each code cell of each notebook below `folder`; IPython magics and shell lines blanked."""
    sources = []
    for path in sorted(folder.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        notebook = json.loads(path.read_text(encoding="utf-8"))
        for index, cell in enumerate(notebook.get("cells", [])):
            if cell.get("cell_type") != "code":
                continue
            text = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            # Keep line numbers: a magic line becomes an empty line.
            lines = [
                "" if line.lstrip().startswith(("%", "!")) else line for line in text.split("\n")
            ]
            location = f"{path.relative_to(root)}[cell {index}]"
            sources.append(Source(location, f"notebook.{path.stem}", False, "\n".join(lines)))
    return sources


def markdown_sources(paths: Iterable[Path], root: Path = ROOT) -> list[Source]:
    """The ```python blocks of Markdown files, padded so line numbers are the file's."""
    sources = []
    for path in paths:
        lines = path.read_text(encoding="utf-8").split("\n")
        start = None
        for number, line in enumerate(lines):
            fence = line.strip()
            if start is None and fence in ("```python", "```py"):
                start = number + 1
            elif start is not None and fence == "```":
                text = "\n" * start + "\n".join(lines[start:number])
                location = str(path.relative_to(root))
                sources.append(Source(location, f"markdown.{path.stem}", False, text))
                start = None
    return sources


# ----------------------------------------------------------------------------------- imports


def _resolve_relative(source: Source, level: int, module: str | None) -> str:
    """Absolute module named by ``from <level dots><module> import ...`` in `source`."""
    package = source.module.split(".")
    if not source.is_package:
        package = package[:-1]
    if level > 1:
        package = package[: len(package) - (level - 1)]
    return ".".join([*package, module] if module else package)


def _dotted(node: ast.expr) -> list[str] | None:
    """``a.b.c`` as ["a", "b", "c"]; None for anything that is not a plain attribute chain."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(names)]


def collect_imports(source: Source, known_modules: frozenset[str]) -> list[Edge]:
    """Every module `source` imports: statements anywhere, string imports, private attributes.

    `known_modules` decides what ``from package import name`` imports: the submodule
    ``package.name`` if it exists, otherwise ``package`` itself.
    """
    try:
        tree = ast.parse(source.text)
    except SyntaxError as error:
        raise SyntaxError(f"{source.location}: {error}") from error
    lines = source.text.split("\n")
    edges: list[Edge] = []
    aliases: dict[str, str] = {}  # local name -> module it is bound to

    def add(node: ast.AST, target: str, kind: str = "import") -> None:
        statement = (ast.get_source_segment(source.text, node) or lines[node.lineno - 1]).strip()
        statement = " ".join(statement.split())
        edges.append(Edge(source.module, target, source.location, node.lineno, statement, kind))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(node, alias.name)
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    aliases[top] = top
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_relative(source, node.level, node.module) if node.level else node.module
            assert base is not None
            targets = []  # one edge per module the statement imports, in order
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in known_modules:
                    aliases[alias.asname or alias.name] = submodule
                target = submodule if submodule in known_modules else base
                if target not in targets:
                    targets.append(target)
            for target in targets:
                add(node, target)
        elif isinstance(node, ast.Call) and node.args:
            function = _dotted(node.func)
            argument = node.args[0]
            if (
                function
                and function[-1] in _IMPORT_CALLS
                and isinstance(argument, ast.Constant)
                and isinstance(argument.value, str)
            ):
                add(node, argument.value, "string")
    # Strings naming a known module (``"pkg.mod"`` or ``"pkg.mod:function"``, as a CLI task or a
    # mock target) are imports too; those already taken as import_module arguments are skipped.
    seen = {(edge.line, edge.target) for edge in edges if edge.kind == "string"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            name = node.value.split(":")[0]
            if (
                _DOTTED.fullmatch(name)
                and name in known_modules
                and (node.lineno, name) not in seen
            ):
                add(node, name, "string")
    # ``bayestumor.workflows._calibrate.x`` reached through an imported face: an attribute chain
    # naming a known private module exactly (so each access is reported once).
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            chain = _dotted(node)
            if not chain or chain[0] not in aliases:
                continue
            target = ".".join([aliases[chain[0]], *chain[1:]])
            if target in known_modules and _private_owner(target) is not None:
                add(node, target, "attribute")
    return edges


# ----------------------------------------------------------------------------------- rules


def subpackage(module: str) -> str | None:
    """``forward.surrogate`` for ``bayestumor.forward.surrogate``; None for the top-level face
    ``bayestumor`` and for modules outside the package."""
    parts = module.split(".")
    if parts[0] != PACKAGE or len(parts) == 1:
        return None
    return ".".join(parts[1:])


def layer_of(unit: str) -> int | None:
    """Layer of a subpackage name such as ``forward.surrogate``; None if it has none."""
    return LAYERS.get(unit.split(".")[0])


def _private_owner(module: str) -> str | None:
    """The package owning a private module: ``bayestumor.forward`` for
    ``bayestumor.forward._pde``; None if no component of `module` is private."""
    parts = module.split(".")
    for index, part in enumerate(parts):
        if part.startswith("_") and not (part.startswith("__") and part.endswith("__")):
            return ".".join(parts[:index])
    return None


@dataclass(frozen=True)
class Report:
    """What the checker found: the subpackage graph and every broken rule, one line each."""

    graph: dict[str, dict[str, list[Edge]]]  # unit -> units it imports -> the imports
    upward: list[str]
    cycles: list[str]
    private: list[str]

    @property
    def violations(self) -> list[str]:
        return [*self.upward, *self.cycles, *self.private]


def package_units(sources: Iterable[Source]) -> dict[str, str]:
    """Module -> the (sub)package node it belongs to in the graph (package modules only)."""
    packages = {s.module for s in sources if s.is_package}
    units = {}
    for source in sources:
        if source.module.split(".")[0] != PACKAGE or source.module == PACKAGE:
            continue
        # The innermost package containing the module, or the top-level module itself.
        parts = source.module.split(".")
        unit = source.module if source.is_package else None
        for end in range(len(parts) - 1, 1, -1):
            if unit is None and ".".join(parts[:end]) in packages:
                unit = ".".join(parts[:end])
        units[source.module] = subpackage(unit or source.module) or ""
    return units


def unit_of(module: str, units: Mapping[str, str]) -> str | None:
    """Graph node of a (possibly unknown, e.g. ``bayestumor.x.y``) module; None for the face."""
    parts = module.split(".")
    for end in range(len(parts), 1, -1):
        if ".".join(parts[:end]) in units:
            return units[".".join(parts[:end])]
    return None


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Elementary cycles reached by depth-first search, one per back edge, as [a, b, ..., a]."""
    cycles: list[list[str]] = []
    state: dict[str, str] = {}  # "active" while on the DFS stack, then "done"
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = "active"
        stack.append(node)
        for successor in sorted(graph.get(node, ())):
            if state.get(successor) == "active":
                cycles.append([*stack[stack.index(successor) :], successor])
            elif successor not in state:
                visit(successor)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def check(package_sources: list[Source], client_sources: list[Source]) -> Report:
    """Apply rules (a) layers, (b) cycles, (c) private modules to the given sources."""
    known = frozenset(s.module for s in package_sources)
    units = package_units(package_sources)
    graph: dict[str, dict[str, list[Edge]]] = {unit: {} for unit in units.values()}
    upward: list[str] = []
    private: list[str] = []
    unlayered: dict[str, list[Edge]] = {}  # subpackage without a layer -> imports involving it

    for source in package_sources:
        for edge in collect_imports(source, known):
            if edge.target.split(".")[0] != PACKAGE:
                continue
            owner = _private_owner(edge.target)
            if owner is not None and not (
                edge.importer == owner or edge.importer.startswith(owner + ".")
            ):
                private.append(f"{edge.where()}  [private module {edge.target} outside {owner}]")
            importer_unit = units.get(edge.importer)
            if importer_unit is None:  # the top-level face may import any layer
                continue
            target_unit = unit_of(edge.target, units)
            if target_unit is None:
                upward.append(
                    f"{edge.where()}  [{importer_unit} imports the top-level face {PACKAGE}]"
                )
                continue
            if target_unit == importer_unit:
                continue
            graph[importer_unit].setdefault(target_unit, []).append(edge)
            own, other = layer_of(importer_unit), layer_of(target_unit)
            if own is None or other is None:
                unlayered.setdefault(importer_unit if own is None else target_unit, []).append(edge)
            elif other > own:
                upward.append(
                    f"{edge.where()}  [upward: {importer_unit} (layer {own}) imports "
                    f"{target_unit} (layer {other})]"
                )
            elif other not in RESTRICTED.get(importer_unit.split(".")[0], range(other + 1)):
                allowed = sorted(RESTRICTED[importer_unit.split(".")[0]])
                upward.append(
                    f"{edge.where()}  [{importer_unit} may import layers {allowed} only, "
                    f"not {target_unit} (layer {other})]"
                )

    for unit, edges in unlayered.items():
        upward.append(
            f"{edges[0].where()}  [{unit} has no layer in LAYERS; {len(edges)} import(s) involve it]"
        )

    for source in client_sources:
        for edge in collect_imports(source, known):
            if edge.target.split(".")[0] == PACKAGE and _private_owner(edge.target) is not None:
                private.append(f"{edge.where()}  [{edge.target} is private: use a public face]")

    cycles = []
    for cycle in find_cycles({unit: targets.keys() for unit, targets in graph.items()}):
        steps = []
        for source_unit, target_unit in itertools.pairwise(cycle):
            first = graph[source_unit][target_unit][0]
            steps.append(f"    {source_unit} -> {target_unit}: {first.where()}")
        cycles.append("cycle " + " -> ".join(cycle) + "\n" + "\n".join(steps))
    return Report(graph, upward, cycles, private)


def format_graph(report: Report) -> str:
    """One line per subpackage, bottom layer first: ``layer  unit -> imported units``."""

    def key(unit: str) -> tuple[int, str]:
        layer = layer_of(unit)
        return (-1 if layer is None else layer, unit)

    lines = []
    for unit in sorted(report.graph, key=key):
        targets = sorted(report.graph[unit], key=key)
        layer = layer_of(unit)
        lines.append(
            f"  [{'?' if layer is None else layer}] {unit:18} -> {', '.join(targets) or '-'}"
        )
    return "\n".join(lines)


def check_tree(root: Path = ROOT) -> Report:
    """The checker applied to this repository."""
    package_sources = python_sources(root / PACKAGE, root)
    client_sources = []
    for folder in CLIENT_DIRS:
        if (root / folder).is_dir():
            client_sources += python_sources(root / folder, root)
            client_sources += notebook_sources(root / folder, root)
    # This file's synthetic fixtures name private modules on purpose.
    this_file = str(Path(__file__).resolve().relative_to(root)) if root == ROOT else None
    client_sources = [s for s in client_sources if s.location != this_file]
    markdown = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    client_sources += markdown_sources([path for path in markdown if path.is_file()], root)
    return check(package_sources, client_sources)


# ----------------------------------------------------------------------------------- tests


def _fail_with(lines: list[str], rule: str) -> None:
    if lines:
        raise AssertionError(f"{rule}: {len(lines)} violation(s)\n" + "\n".join(lines))


_REPORT: Report | None = None


def _tree_report() -> Report:
    global _REPORT
    if _REPORT is None:
        _REPORT = check_tree()
        print("\nbayestumor subpackage import graph ([layer] unit -> units it imports):")
        print(format_graph(_REPORT))
    return _REPORT


def test_every_subpackage_has_a_layer():
    """The layer table covers every subpackage on disk, so a new one cannot escape the rules."""
    on_disk = {
        path.stem
        for path in (ROOT / PACKAGE).iterdir()
        if (path.is_dir() and (path / "__init__.py").exists())
        or (path.suffix == ".py" and path.name != "__init__.py")
    }
    assert on_disk - set(LAYERS) == set(), f"add these to LAYERS: {sorted(on_disk - set(LAYERS))}"


def test_no_upward_imports():
    _fail_with(_tree_report().upward, "(a) upward imports")


def test_no_cycles_between_subpackages():
    _fail_with(_tree_report().cycles, "(b) import cycles")


def test_private_modules_stay_inside_their_package():
    _fail_with(_tree_report().private, "(c) private modules imported from outside")


def test_checker_reports_each_kind_of_violation():
    """A synthetic package with one violation of each rule: every one must be reported."""

    def fake(module: str, text: str, is_package: bool = False) -> Source:
        suffix = "/__init__.py" if is_package else ".py"
        return Source(module.replace(".", "/") + suffix, module, is_package, text)

    package = [
        fake("bayestumor", "from bayestumor.cli import main\n", is_package=True),
        fake("bayestumor.errors", "class InputError(Exception): ...\n"),
        fake("bayestumor._custom_types", "Array = object\n"),
        fake("bayestumor.imaging", "from bayestumor.imaging._grid import Grid\n", True),
        fake("bayestumor.imaging._grid", "from bayestumor._custom_types import Array\n"),
        fake("bayestumor.forward", "from ._pde import PDEForward\n", True),
        # (a) upward, hidden inside a function: forward (2) -> model (3).
        fake("bayestumor.forward._pde", "def solve():\n    from bayestumor.model import Priors\n"),
        fake("bayestumor.forward.surrogate", "from bayestumor.forward import _pde\n", True),
        # (b) cycle model <-> inference (also upward), inside a TYPE_CHECKING block.
        fake(
            "bayestumor.model",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from bayestumor.inference import run\n",
            True,
        ),
        fake("bayestumor.inference", "from bayestumor.model import Priors\n", True),
        # (c) private module of another package, and a string import of one.
        fake(
            "bayestumor.workflows",
            "import importlib\nfrom bayestumor.imaging._grid import Grid\n"
            "importlib.import_module('bayestumor.forward._pde')\n",
            True,
        ),
        # Radiotherapy is independent: layer 0 only.
        fake("bayestumor.radiotherapy", "from bayestumor.imaging import Grid\n", True),
        fake("bayestumor.cli", "import bayestumor.workflows\n", True),
        # A subpackage missing from LAYERS is reported once, however often it imports.
        fake(
            "bayestumor.newpkg",
            "from bayestumor.errors import A, B\nimport bayestumor.errors\n",
            True,
        ),
    ]
    clients = [
        fake("tests.test_x", "import bayestumor._custom_types\nimport bayestumor.errors\n"),
        fake("tests.test_y", "import pytest\nm = pytest.importorskip('bayestumor.forward._pde')\n"),
        fake("tests.test_z", "import bayestumor.imaging as im\nim._grid.Grid\n"),
    ]
    report = check(package, clients)
    text = "\n".join(report.violations)

    assert len(report.upward) == 4, report.upward
    assert "newpkg has no layer in LAYERS; 2 import(s) involve it" in text
    assert "bayestumor/forward/_pde.py:2: from bayestumor.model import Priors" in text
    assert "upward: forward (layer 2) imports model (layer 3)" in text
    assert "upward: model (layer 3) imports inference (layer 4)" in text
    assert "radiotherapy may import layers [0] only, not imaging (layer 1)" in text

    assert len(report.cycles) == 1, report.cycles
    assert report.cycles[0].startswith("cycle model -> inference -> model")
    assert "bayestumor/model/__init__.py:3" in text

    assert len(report.private) == 5, report.private
    assert "bayestumor/workflows/__init__.py:2: from bayestumor.imaging._grid import Grid" in text
    assert "bayestumor/workflows/__init__.py:3: importlib.import_module(" in text
    assert "tests/test_x.py:1: import bayestumor._custom_types" in text
    assert "tests/test_y.py:2: pytest.importorskip('bayestumor.forward._pde')" in text
    assert "tests/test_z.py:2: im._grid" in text
    # Allowed: the face importing the top layer, a package importing its own private modules
    # (relative or absolute, from a nested subpackage too), tests importing bayestumor.errors.
    assert "bayestumor/__init__.py" not in text
    assert "forward/surrogate" not in text
    assert "tests/test_x.py:2" not in text

    assert find_cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": ["b"], "b": []}) == []


def test_notebook_cells_are_checked(tmp_path):
    """Notebook code cells are parsed (magics skipped) and reported by cell and line."""
    notebook = {
        "cells": [
            {"cell_type": "markdown", "source": "import bayestumor._custom_types"},
            {"cell_type": "code", "source": ["%matplotlib inline\n", "import bayestumor\n"]},
            {"cell_type": "code", "source": ["x = 1\n", "from bayestumor.model._priors import S"]},
        ]
    }
    (tmp_path / "nb.ipynb").write_text(json.dumps(notebook))
    sources = notebook_sources(tmp_path, tmp_path)
    assert [s.location for s in sources] == ["nb.ipynb[cell 1]", "nb.ipynb[cell 2]"]
    report = check([Source("bayestumor/__init__.py", "bayestumor", True, "")], sources)
    assert report.private == [
        "nb.ipynb[cell 2]:2: from bayestumor.model._priors import S"
        "  [bayestumor.model._priors is private: use a public face]"
    ]


def main() -> int:
    report = check_tree()
    print("bayestumor subpackage import graph ([layer] unit -> units it imports):")
    print(format_graph(report))
    for title, lines in [
        ("(a) upward imports", report.upward),
        ("(b) import cycles", report.cycles),
        ("(c) private modules imported from outside", report.private),
    ]:
        if lines:
            print(f"\n{title}:")
            print("\n".join(f"  {line}" for line in lines))
    if report.violations:
        print(f"\n{len(report.violations)} violation(s)")
        return 1
    print("\nno upward imports, no cycles, no private imports from outside a package")
    return 0


if __name__ == "__main__":
    sys.exit(main())
