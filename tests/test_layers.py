"""The import graph of the installed packages: layers only point down, siblings stay apart, no circles."""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Bottom to top; a package may import its own layer's package and any layer below it.
LAYERS = {"core": 0, "db": 1, "api": 2, "worker": 2, "client": 3, "cli": 4}
# What each package may import besides itself; the client talks HTTP and needs nothing server-side.
ALLOWED = {
    "core": set(),
    "db": {"core"},
    "api": {"core", "db"},
    "worker": {"core", "db"},
    "client": {"core"},
    "cli": {"core", "db", "api", "worker", "client"},
}
# Packages that must run without torch: the API process, and everything the API imports.
TORCH_FREE = ("core", "db", "api", "client")
# The API never decodes an image (the worker stores thumbnails and previews): no Pillow on its side.
PILLOW_FREE = ("core", "db", "api", "client")
# The one import of something unshipped: `imagebatch bench` runs the benchmark of a source checkout.
UNSHIPPED_ALLOWED = {("cli/tools.py", "bench")}


def source_files() -> list[Path]:
    return sorted(p for package in LAYERS for p in (REPO / package).rglob("*.py"))


def module_file(module: str) -> Path | None:
    """The file of an `imagebatch.<package>...` module in this checkout, if it is one."""
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "imagebatch" or parts[1] not in LAYERS:
        return None
    base = REPO.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports(path: Path) -> Iterator[tuple[str, int]]:
    """Every module a file imports, at any depth (inside functions too), with its line number."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield (submodule if module_file(submodule) else node.module), node.lineno


def package_of(path: Path) -> str:
    return path.relative_to(REPO).parts[0]


def file_graph() -> dict[Path, set[Path]]:
    graph: dict[Path, set[Path]] = {path: set() for path in source_files()}
    for path in graph:
        for module, _ in imports(path):
            target = module_file(module)
            if target is not None and target != path:
                graph[path].add(target)
    return graph


def strongly_connected(graph: dict[Path, set[Path]]) -> list[list[Path]]:
    """Tarjan's algorithm, iteratively: the groups of files that reach each other."""
    index: dict[Path, int] = {}
    low: dict[Path, int] = {}
    on_stack: set[Path] = set()
    stack: list[Path] = []
    groups: list[list[Path]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    groups.append(group)
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return groups


def test_every_package_is_found() -> None:
    assert {package_of(p) for p in source_files()} == set(LAYERS)


def test_imports_only_point_down_and_siblings_stay_apart() -> None:
    wrong = []
    for path in source_files():
        own = package_of(path)
        for module, line in imports(path):
            parts = module.split(".")
            if parts[0] in LAYERS:
                wrong.append(f"{path.relative_to(REPO)}:{line} imports {module} outside the imagebatch namespace")
            elif parts[0] in ("bench", "tests") and (str(path.relative_to(REPO)), parts[0]) not in UNSHIPPED_ALLOWED:
                wrong.append(f"{path.relative_to(REPO)}:{line} imports {module}, which is not shipped")
            elif parts[0] == "imagebatch" and len(parts) > 1 and parts[1] in LAYERS:
                target = parts[1]
                if target != own and target not in ALLOWED[own]:
                    wrong.append(f"{path.relative_to(REPO)}:{line} ({own}) imports {module} ({target})")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("package", TORCH_FREE)
def test_torch_stays_out_of_the_api_side(package: str) -> None:
    found = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in (REPO / package).rglob("*.py")
        for module, line in imports(path)
        if module.split(".")[0] in ("torch", "torchvision")
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("package", PILLOW_FREE)
def test_pillow_stays_out_of_the_api_side(package: str) -> None:
    found = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in (REPO / package).rglob("*.py")
        for module, line in imports(path)
        if module.split(".")[0] == "PIL"
    ]
    assert not found, "\n".join(found)


def test_no_circle_of_files() -> None:
    circles = [group for group in strongly_connected(file_graph()) if len(group) > 1]
    described = [" -> ".join(str(p.relative_to(REPO)) for p in sorted(group)) for group in circles]
    assert not circles, "files importing each other in a circle:\n" + "\n".join(described)


def test_the_checker_sees_a_circle_and_an_upward_arrow(tmp_path: Path) -> None:
    """The graph walk itself: a planted two-file circle is found (so a pass above means something)."""
    a, b, c = tmp_path / "a.py", tmp_path / "b.py", tmp_path / "c.py"
    graph = {a: {b}, b: {a, c}, c: set()}
    groups = [sorted(g) for g in strongly_connected(graph) if len(g) > 1]
    assert groups == [[a, b]]


def test_every_package_folder_is_shipped() -> None:
    """pyproject.toml lists packages by hand (a package-dir mapping): a new subpackage must be listed."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(("imagebatch", *init.parent.relative_to(REPO).parts))
        for package in LAYERS
        for init in (REPO / package).rglob("__init__.py")
    }
    assert listed == found
