"""Import cycles among the project's own modules: `python -m tools.import_cycles`.

Walks the imports of every Python file of the project's packages (an AST walk, nothing is imported) and
prints each group of modules that import one another, or one OK line. Imports inside functions count: moving
an import into a function only hides a circle from Python until the call, the two modules still cannot be
understood or changed apart. `if TYPE_CHECKING:` imports never run and do not count. Importing a.b.c also
runs the packages a and a.b, so those count too. Every package uses only those below it.

KNOWN_CYCLES are the accepted exceptions, each with its reason.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# The project's Python packages (firmware/ runs on the boards, protocol/ on both sides).
PACKAGES = ("edge_agent", "fleet", "provisioning", "protocol", "tools", "firmware")
SKIP_DIRS = {"__pycache__", "node_modules", ".venv", "build", "dist"}

KNOWN_CYCLES: dict[frozenset[str], str] = {
    # On a board, ota_download (and its buffers) is imported only when an update comes, to keep the heap of
    # a board that is not updating; it uses ota's state. Left to the firmware's owners (issue 16 names it not).
    frozenset({"firmware.lib.ota", "firmware.lib.ota_download"}): "firmware heap: download code loaded late",
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(root: Path = REPO, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """Module name -> file, for every .py file under the given top-level packages."""
    modules: dict[str, Path] = {}
    for package in packages:
        base = root / package
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.py")):
            if SKIP_DIRS.intersection(path.relative_to(root).parts):
                continue
            modules[module_name(path, root)] = path
    return modules


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def runtime_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import that can run: at module level and inside functions alike (an import moved into a
    function still ties the two modules together, it only hides the circle from Python until the call);
    not the ones under `if TYPE_CHECKING:`, which never run."""
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
            continue
        if isinstance(node, ast.If) and is_type_checking(node.test):
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))


def resolve_from(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = importer.split(".") if is_package else importer.split(".")[:-1]
    if node.level > 1:
        package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def imports_of(importer: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `importer` imports at module level (the deepest module each import names)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def add(name: str) -> None:
        # `import a.b.c` names a.b.c; a name that is not a module (a function in a.b) falls back to a.b.
        while name and name not in modules:
            name = name.rpartition(".")[0]
        # Importing a.b.c also runs a and a.b (the importer's own packages have run already).
        while name and not (importer + ".").startswith(name + "."):
            if name != importer and name in modules:
                found.add(name)
            name = name.rpartition(".")[0]

    for node in runtime_imports(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        else:
            base = resolve_from(importer, is_package, node)
            for alias in node.names:
                add(base + "." + alias.name if base else alias.name)
    return found


def import_graph(root: Path = REPO, packages: Iterable[str] = PACKAGES) -> dict[str, set[str]]:
    modules = project_modules(root, packages)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted, sorted by first name."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0

    for start in sorted(graph):
        if start in index:
            continue
        # Iterative Tarjan: (node, iterator over its successors).
        work: list[tuple[str, Iterator[str]]] = []
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        work.append((start, iter(sorted(graph.get(start, ())))))
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph.get(succ, ())))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return sorted(groups)


def describe(group: list[str], graph: dict[str, set[str]]) -> str:
    members = set(group)
    edges = ["%s -> %s" % (a, b) for a in group for b in sorted(graph[a] & members)]
    return "import cycle among %s:\n    %s" % (", ".join(group), "\n    ".join(edges))


def main(argv: list[str] | None = None) -> int:
    graph = import_graph()
    found = [group for group in cycles(graph) if frozenset(group) not in KNOWN_CYCLES]
    for group in found:
        print(describe(group, graph))
    if found:
        return 1
    print("no import cycles among %d modules" % len(graph))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
