"""Layers point down only: every module's imports, top-level and inside functions, read with `ast`.

The order below is the one place the allowed direction is written (docs/architecture.md draws
it). A module may import its own package and any package on a lower line; packages on the same
line are peers and never import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import newsletter

#: Lowest first.
LAYERS: list[set[str]] = [
    {"newsletter", "newsletter.core"},  # the root package itself only holds __version__
    {"newsletter.db"},
    {"newsletter.audience", "newsletter.compose"},
    {"newsletter.providers", "newsletter.checks"},
    {"newsletter.dispatch", "newsletter.events"},
    {"newsletter.web"},
    {"newsletter.cli"},
    {"newsletter.__main__"},
]

ROOT = Path(newsletter.__file__).parent


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def imports_of(name: str, source: str, known: set[str], is_package: bool) -> set[str]:
    """Every newsletter module `source` imports, wherever the import statement sits."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return {m for m in found if m == "newsletter" or m.startswith("newsletter.")}


def layer_of(module: str) -> tuple[int, str]:
    """(layer number, package) of a module: its longest listed package prefix."""
    best: tuple[int, str] | None = None
    for number, packages in enumerate(LAYERS):
        for package in packages:
            inside = package != "newsletter" and module.startswith(package + ".")
            if module == package or inside:
                if best is None or len(package) > len(best[1]):
                    best = (number, package)
    if best is None:
        raise LookupError(f"{module} is in no layer: add its package to LAYERS")
    return best


def violations(modules: dict[str, str], packages: set[str]) -> list[str]:
    """`importer -> imported` pairs that climb a layer or cross to a peer."""
    known = set(modules)
    found = []
    for name, source in sorted(modules.items()):
        layer, package = layer_of(name)
        for target in sorted(imports_of(name, source, known, name in packages)):
            to_layer, to_package = layer_of(target)
            if to_package == package or to_layer < layer:
                continue
            found.append(f"{name} -> {target}")
    return found


def test_every_module_imports_only_its_package_or_lower_layers() -> None:
    paths = all_modules()
    modules = {name: path.read_text(encoding="utf-8") for name, path in paths.items()}
    packages = {name for name, path in paths.items() if path.name == "__init__.py"}
    assert len(modules) > 60  # the walk found the tree
    assert violations(modules, packages) == []


def test_every_package_has_a_layer() -> None:
    for name in all_modules():
        layer_of(name)  # raises for a package nobody placed


@pytest.mark.parametrize(
    ("importer", "source", "bad"),
    [
        # a function-level climb is still a climb
        ("newsletter.db.engine", "def f():\n    from newsletter.dispatch import service\n",
         ["newsletter.db.engine -> newsletter.dispatch.service"]),
        # peers do not import each other
        ("newsletter.events.apply", "import newsletter.dispatch.ledger\n",
         ["newsletter.events.apply -> newsletter.dispatch.ledger"]),
        ("newsletter.compose.render", "from newsletter import audience\n",
         ["newsletter.compose.render -> newsletter.audience"]),
        # relative imports resolve to their package
        ("newsletter.providers.smtp", "from ..dispatch import run\n",
         ["newsletter.providers.smtp -> newsletter.dispatch.run"]),
        # down and within the package are fine
        ("newsletter.dispatch.run",
         "from newsletter.providers.base import Transport\nfrom . import ledger\n"
         "from newsletter.core.errors import FailedError\n", []),
    ],
)
def test_the_rule_catches_a_climb(importer: str, source: str, bad: list[str]) -> None:
    modules = {name: "" for name in all_modules()}
    modules[importer] = source
    packages = {n for n, p in all_modules().items() if p.name == "__init__.py"}
    assert violations(modules, packages) == bad


def test_readme_layout_lists_every_package() -> None:
    """README.md's layout block names each package folder of newsletter/, and only those."""
    readme = (ROOT.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Layout", 1)[1].split("```")[1]
    listed = {line.split()[0].rstrip("/") for line in block.splitlines()[2:]
              if line.startswith("  ") and line[2] != " "}
    folders = {p.name for p in ROOT.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert listed == folders - {"data"}
    packages = {name.split(".")[1] for layer in LAYERS for name in layer if name.count(".") == 1}
    on_disk = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert packages - {"__main__"} == on_disk


#: The folder patterns of GitHub's standard Python .gitignore (github/gitignore, Python.gitignore):
#: a package folder matching one is silently left out of a repository that adopts that file.
PYTHON_GITIGNORE_FOLDERS = (
    "build", "develop-eggs", "dist", "downloads", "eggs", ".eggs", "lib", "lib64", "parts",
    "sdist", "var", "wheels", "share/python-wheels", "*.egg-info", "htmlcov", ".tox", ".nox",
    ".cache", ".hypothesis", ".pytest_cache", "cover", "instance", "_build", "target",
    "profile_default", "ipython_config.py", "__pypackages__", ".venv", "env", "venv", "ENV",
    "env.bak", "venv.bak", "site", ".mypy_cache", ".pyre", ".pytype", "cython_debug", ".pdm-build",
    ".pixi", ".ruff_cache", ".abstra", ".cursorignore", ".marimo",
)


def test_no_package_folder_is_named_like_an_ignored_output_folder() -> None:
    """No folder of the package matches a folder pattern of the standard Python .gitignore."""
    import fnmatch

    folders = [p for p in ROOT.rglob("*") if p.is_dir() and p.name != "__pycache__"]
    assert folders, "the package has folders"
    clashes = [str(p.relative_to(ROOT.parent)) for p in folders
               for pattern in PYTHON_GITIGNORE_FOLDERS
               if "/" not in pattern and fnmatch.fnmatch(p.name, pattern)]
    assert clashes == []


#: the one module that reads or writes the process environment
SETTINGS_MODULE = "newsletter.core.settings"
_ENVIRONMENT_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def environment_uses(source: str) -> list[int]:
    """Lines of `source` that touch the process environment through `os` (under any alias,
    imported names included)."""
    tree = ast.parse(source)
    aliases = {alias.asname or alias.name for node in ast.walk(tree)
               if isinstance(node, ast.Import) for alias in node.names if alias.name == "os"}
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os" and any(
                alias.name in _ENVIRONMENT_NAMES for alias in node.names):
            lines.append(node.lineno)
        elif (isinstance(node, ast.Attribute) and node.attr in _ENVIRONMENT_NAMES
              and isinstance(node.value, ast.Name) and node.value.id in aliases):
            lines.append(node.lineno)
    return lines


def test_only_the_settings_module_touches_the_environment() -> None:
    """Every setting is declared once, in core/settings.py: no other module reads or writes
    os.environ (not even to hand a value to a child process)."""
    found = [f"{name}:{line}" for name, path in all_modules().items() if name != SETTINGS_MODULE
             for line in environment_uses(path.read_text(encoding="utf-8"))]
    assert found == []
    settings = all_modules()[SETTINGS_MODULE].read_text(encoding="utf-8")
    assert environment_uses(settings), "the settings module reads the environment"


@pytest.mark.parametrize(("source", "hits"), [
    ("import os\nx = os.environ.get('A')\n", [2]),
    ("import os as o\no.environ['A'] = '1'\n", [2]),
    ("from os import getenv\n", [1]),
    ("import os\nos.putenv('A', '1')\n", [2]),
    ("import os\nos.getpid()\nenviron = {}\n", []),
])
def test_the_environment_check_sees_each_form(source: str, hits: list[int]) -> None:
    assert environment_uses(source) == hits


def import_graph(modules: dict[str, str], packages: set[str]) -> dict[str, set[str]]:
    """module -> the newsletter modules it imports (the edges the layer rule checks)."""
    known = set(modules)
    return {name: {t for t in imports_of(name, source, known, name in packages)
                   if t in known and t != name}
            for name, source in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle: the strongly connected components of more than one module
    (Tarjan's algorithm, iterative), each sorted, the list sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for target in edges:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph.get(target, ())))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return sorted(found)


def test_no_import_circle_inside_the_package() -> None:
    """No module reaches itself through imports, wherever the import statements sit (a
    function-level import closes a circle too)."""
    paths = all_modules()
    modules = {name: path.read_text(encoding="utf-8") for name, path in paths.items()}
    packages = {name for name, path in paths.items() if path.name == "__init__.py"}
    graph = import_graph(modules, packages)
    assert sum(len(edges) for edges in graph.values()) > 200  # the walk found the edges
    assert cycles(graph) == []


@pytest.mark.parametrize(("graph", "expected"), [
    ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c", "a"}},
     [["a", "b"], ["c", "d", "e"]]),
    ({"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": set()}, []),  # a diamond is no circle
])
def test_the_cycle_finder_finds_each_circle(graph: dict[str, set[str]],
                                            expected: list[list[str]]) -> None:
    assert cycles(graph) == expected


def test_the_cycle_finder_reads_function_level_imports() -> None:
    modules = {"newsletter.web.public": "def f():\n    from newsletter.web import preferences\n",
               "newsletter.web.preferences": "from newsletter.web.public import side\n",
               "newsletter.web": ""}
    graph = import_graph(modules, {"newsletter.web"})
    assert cycles(graph) == [["newsletter.web.preferences", "newsletter.web.public"]]


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), list(graph[start])
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph[node])
    return seen


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8).flatmap(lambda n: st.lists(
    st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=16).map(
        lambda edges: (n, edges))))
def test_the_cycle_finder_matches_mutual_reachability(sized: tuple[int, list]) -> None:
    """Reference: two modules share a circle when each reaches the other."""
    n, edges = sized
    graph: dict[str, set[str]] = {f"m{i}": set() for i in range(n)}
    for a, b in edges:
        if a != b:
            graph[f"m{a}"].add(f"m{b}")
    reach = {node: _reachable(graph, node) for node in graph}
    groups = {frozenset({node} | {other for other in reach[node] if node in reach[other]})
              for node in graph}
    assert cycles(graph) == sorted(sorted(g) for g in groups if len(g) > 1)
