"""The package's layout as the README's "How the package is laid out" maps
it: every file in the table, and each importing only files above it (or
before it on its row) when it is loaded, so imports never go in a circle."""

from __future__ import annotations

import ast
import pathlib
import re

import redis_ratelimit

PACKAGE = pathlib.Path(redis_ratelimit.__file__).parent
README = pathlib.Path(__file__).parents[1] / "README.md"


def _table() -> list[str]:
    """The table's files, in order, as paths inside the package."""
    text = README.read_text()
    section = text.split("## How the package is laid out\n", 1)[1].split("\n## ", 1)[0]
    files: list[str] = []
    for row in section.splitlines():
        if not row.startswith("| `"):
            continue
        folder = ""
        for name in re.findall(r"`([\w/]+\.py)`", row.split(" | ")[0]):
            if "/" in name:
                folder, name = name.rsplit("/", 1)
            files.append(f"{folder}/{name}" if folder else name)
    return files


def _loaded_imports(path: pathlib.Path) -> set[str]:
    """The package's files this one imports when it is loaded: not those
    named only for type checking (under TYPE_CHECKING) nor imported inside
    a function."""
    inner = path.relative_to(PACKAGE).parent.parts
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.ImportFrom) and node.level:
                base = list(inner[: len(inner) - (node.level - 1)])
                module = [*base, *(node.module.split(".") if node.module else [])]
                candidates = [module] if node.module else [[*module, a.name] for a in node.names]
                for parts in candidates:
                    for rel in ("/".join(parts) + ".py", "/".join([*parts, "__init__.py"])):
                        if (PACKAGE / rel).is_file():
                            found.add(rel)
            elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)

    visit(ast.parse(path.read_text()).body)
    return found


def test_the_readme_maps_every_file_and_imports_point_up_the_table() -> None:
    order = _table()
    assert len(order) == len(set(order)), order
    files = sorted(
        str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"
    )
    assert sorted(order) == files
    for rank, name in enumerate(order):
        for used in _loaded_imports(PACKAGE / name):
            assert used in order[:rank], f"{name} imports {used}, below it in the README's table"
