"""The modules of helpers import each other without a cycle, counting the imports inside functions too: a cycle
hidden by a function-local import breaks as soon as someone moves that import to the top."""
import ast
from pathlib import Path

import helpers

PACKAGE = Path(helpers.__file__).parent


def imports(path: Path) -> set:
    """The helpers modules that ``path`` imports, anywhere in the file."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module.split(".")[0])
            else:
                out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("helpers."):
            out.add(node.module.split(".")[1])
    return out


def test_no_module_of_helpers_imports_itself_through_others():
    modules = {p.stem: p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    graph = {name: imports(path) & set(modules) - {name} for name, path in modules.items()}
    cycles = []

    def visit(node, path):
        for nxt in sorted(graph[node]):
            if nxt in path:
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif len(path) < len(graph):
                visit(nxt, path + [nxt])

    for start in sorted(graph):
        visit(start, [start])
    assert not cycles, "import cycles among helpers modules:\n" + "\n".join(sorted(set(cycles))[:20])
