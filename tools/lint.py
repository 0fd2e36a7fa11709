"""Architecture checks that ruff cannot express: `python -m tools.lint`.

Each rule is one row of RULES: a name, which files it applies to (a test on the
path relative to the repository root, with '/' separators) and a check that
gets the parsed module and yields (line, message). Adding a rule is adding a
row. Prints `path:line: [rule] message` per problem and exits 1, or prints one
OK line and exits 0.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath

from protocol import topics

REPO = Path(__file__).resolve().parent.parent

# Folders never scanned, wherever they are.
SKIP_DIRS = {".git", ".venv", "venv", "node_modules", ".run", "build", "dist", "__pycache__", ".pytest_cache",
             ".ruff_cache", ".mypy_cache"}

# Topic strings are spelled only by protocol.topics. Spelled without the literal, so this file passes itself.
TOPIC_PREFIXES = (topics.ROOT + "/", "$share" + "/")

PROTOCOL_FORBIDDEN = ("machine", "network", "typing", "dataclasses", "pathlib", "logging")
HARDWARE_MODULES = ("machine", "network")
HARDWARE_FILES = ("main.py", "boot.py")
HARDWARE_DIR = "drivers"


class Rule:
    def __init__(self, name: str, applies: Callable[[PurePosixPath], bool],
                 check: Callable[[ast.AST], Iterable[tuple[int, str]]]):
        self.name = name
        self.applies = applies
        self.check = check


class Problem:
    def __init__(self, path: str, line: int, rule: str, message: str):
        self.path, self.line, self.rule, self.message = path, line, rule, message

    def __str__(self) -> str:
        return "%s:%d: [%s] %s" % (self.path, self.line, self.rule, self.message)

    def __repr__(self) -> str:
        return "Problem(%r)" % str(self)


# --- which files ---------------------------------------------------------------------------------------


def under(rel: PurePosixPath, folder: str) -> bool:
    return rel.parts[:1] == (folder,)


def outside_the_contract(rel: PurePosixPath) -> bool:
    """Everywhere but protocol/, docs/ and the protocol's own tests."""
    if under(rel, "protocol") or under(rel, "docs"):
        return False
    return not (len(rel.parts) == 2 and rel.parts[0] == "tests" and rel.name.startswith("test_protocol"))


def in_protocol(rel: PurePosixPath) -> bool:
    return under(rel, "protocol")


def firmware_logic(rel: PurePosixPath) -> bool:
    """firmware/ files that must not touch hardware: not main.py, boot.py, drivers/ or the CPython simulator."""
    if not under(rel, "firmware") or rel.parts[:2] == ("firmware", "sim"):
        return False
    return rel.name not in HARDWARE_FILES and HARDWARE_DIR not in rel.parts[1:-1]


# --- what is checked -----------------------------------------------------------------------------------


def imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, top-level module name) for every import, also inside functions."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


def string_literals(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, text) of every str/bytes literal, and of the first literal part of every f-string."""
    in_fstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            for part in node.values:
                in_fstrings.add(id(part))
            first = node.values[0] if node.values else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, first.value
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and id(node) not in in_fstrings:
            if isinstance(node.value, str):
                yield node.lineno, node.value
            elif isinstance(node.value, bytes):
                yield node.lineno, node.value.decode("latin-1")


def topic_literals(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for line, text in string_literals(tree):
        if text.startswith(TOPIC_PREFIXES):
            yield line, "topic string %r spelled outside protocol/: use protocol.topics.build/subscription/shared" % (
                text[:60],)


def forbidden_imports(forbidden: tuple[str, ...], why: str) -> Callable[[ast.AST], Iterator[tuple[int, str]]]:
    def check(tree: ast.AST) -> Iterator[tuple[int, str]]:
        for line, module in imported_modules(tree):
            if module in forbidden:
                yield line, "import of %s: %s" % (module, why)

    return check


def named_regex_groups(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for line, text in string_literals(tree):
        if "(?P<" in text:
            yield line, "named regex group: MicroPython's re has none"


RULES = (
    Rule("topic-literal", outside_the_contract, topic_literals),
    Rule("protocol-imports", in_protocol,
         forbidden_imports(PROTOCOL_FORBIDDEN, "protocol/ must run on MicroPython too")),
    Rule("protocol-regex", in_protocol, named_regex_groups),
    Rule("firmware-hardware", firmware_logic,
         forbidden_imports(HARDWARE_MODULES, "only main.py, boot.py and drivers/ touch hardware, so the logic "
                                             "runs in the CPython simulator")),
)


# --- running -------------------------------------------------------------------------------------------


def python_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.iterdir()):
        if path.is_dir():
            if path.name in SKIP_DIRS or path.name.startswith("."):
                continue
            yield from python_files(path)
        elif path.suffix == ".py" and path.is_file():
            yield path


def lint_file(path: Path, root: Path, rules=RULES) -> list[Problem]:
    rel = PurePosixPath(path.relative_to(root).as_posix())
    active = [rule for rule in rules if rule.applies(rel)]
    if not active:
        return []
    try:
        source = path.read_bytes()
        tree = ast.parse(source, filename=str(rel))
    except SyntaxError as error:
        return [Problem(str(rel), error.lineno or 1, "syntax", "cannot parse: %s" % error.msg)]
    except (OSError, ValueError) as error:
        return [Problem(str(rel), 1, "syntax", "cannot read: %s" % error)]
    problems = []
    for rule in active:
        for line, message in rule.check(tree):
            problems.append(Problem(str(rel), line, rule.name, message))
    return sorted(problems, key=lambda p: (p.line, p.rule))


def lint(root: Path = REPO, rules=RULES) -> tuple[list[Problem], int]:
    """All problems under `root`, and how many files were read."""
    problems = []
    count = 0
    for path in python_files(root):
        count += 1
        problems.extend(lint_file(path, root, rules))
    return problems, count


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]).resolve() if args else REPO
    problems, count = lint(root)
    for problem in problems:
        print(problem)
    if problems:
        print("lint: %d problem(s) in %d files" % (len(problems), count), file=sys.stderr)
        return 1
    print("lint: OK (%d files, %d rules)" % (count, len(RULES)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
