"""Fail when first-party modules import each other in a cycle, function-local imports included.

import-linter's contracts (.importlinter) keep the apps layered; this check covers what they do
not: a cycle between two modules of one package. The graph is grimp's (import-linter's own), which
reads every import statement, at module level or inside a function. Run by `make lint`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("abplatform", "accounts", "analysis", "core", "engine", "experiments", "offpolicy", "ops",
            "recommenders", "serving", "simulation")  # fmt: skip


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in modules:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            recurse = False
            for j in range(i, len(edges[node])):
                target = edges[node][j]
                if target not in index:
                    work.append((node, j + 1))
                    work.append((target, 0))
                    recurse = True
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            if recurse:
                continue
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
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def main() -> int:
    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    found = cycles(graph)
    for component in found:
        print("import cycle:", " <-> ".join(component))
        for source in component:
            for target in graph.find_modules_directly_imported_by(source):
                if target in component:
                    lines = [d["line_number"] for d in graph.get_import_details(importer=source, imported=target)]
                    print(f"  {source} imports {target} (line {', '.join(map(str, lines))})")
    if not found:
        print(f"No import cycles between the modules of {', '.join(PACKAGES)}.")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
