"""Read tunesmith's own imports with `ast` and report the shape of the package.

    python tools/imports.py [--json] [--check]

Prints files, lines, the median and largest module, functions over 80 lines, import circles
(strongly connected components of the module graph, counting imports made inside functions too),
upward imports (a module importing a layer above its own, see LAYERS) and imports of the project's
own modules made inside functions. `--check` exits 1 when there is a circle or an upward import.
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "tunesmith"

# Lowest first. A module may import its own layer and the ones below it. The first matching prefix
# decides a module's layer (so `tunesmith.cli` is matched before `tunesmith`).
LAYERS: list[list[str]] = [
    ["tunesmith.errors", "tunesmith.atomic", "tunesmith.home", "tunesmith.outputs",
     "tunesmith.hparams", "tunesmith.samples"],
    ["tunesmith.data", "tunesmith.pricing", "tunesmith.cost", "tunesmith.shutdowns"],
    ["tunesmith.modeling", "tunesmith.heads", "tunesmith.generation", "tunesmith.export"],
    ["tunesmith.config"],
    ["tunesmith.training", "tunesmith.prompting", "tunesmith.endpoints", "tunesmith.audit"],
    ["tunesmith.evaluation"],
    ["tunesmith.report"],
    ["tunesmith.studies"],
    ["tunesmith.jobs"],
    ["tunesmith.serve"],
    ["tunesmith.cli", "tunesmith.__main__", "tunesmith"],
]


def layer_of(module: str) -> int:
    best, best_len = len(LAYERS) - 1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def own_targets(name: str, known: set[str]) -> str | None:
    """The longest known module that `name` is or lies inside."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def collect() -> dict:
    files = sorted(ROOT.joinpath(PACKAGE).rglob("*.py"))
    modules = {module_name(f): f for f in files}
    known = set(modules)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    deferred: list[tuple[str, str, int]] = []
    long_functions: list[tuple[str, str, int]] = []
    sizes: dict[str, int] = {}
    for name, path in modules.items():
        source = path.read_text(encoding="utf-8")
        sizes[name] = len(source.splitlines())
        tree = ast.parse(source)
        is_package = path.name == "__init__.py"
        function_lines: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 80:
                    long_functions.append((name, node.name, length))
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        function_lines.add(inner.lineno)
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = resolve(name, is_package, node)
                targets = [f"{base}.{alias.name}" for alias in node.names] or [base]
            for target in targets:
                own = own_targets(target, known)
                if own is None or own == name:
                    continue
                if own == PACKAGE and not target.startswith(PACKAGE):
                    continue
                graph[name].add(own)
                if node.lineno in function_lines and (name, own, node.lineno) not in deferred:
                    deferred.append((name, own, node.lineno))
    return {"modules": modules, "graph": graph, "deferred": deferred,
            "long_functions": long_functions, "sizes": sizes}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def is_parent_package(module: str, target: str) -> bool:
    # `from tunesmith.data import x` in tunesmith.data.y runs the package __init__; not an edge up
    return module.startswith(target + ".")


def summarize(data: dict) -> dict:
    graph = {m: {t for t in ts if not is_parent_package(m, t)} for m, ts in data["graph"].items()}
    upward = sorted(
        (m, t) for m, ts in graph.items() for t in ts if layer_of(t) > layer_of(m)
    )
    sizes = sorted(data["sizes"].values())
    largest = max(data["sizes"].items(), key=lambda kv: kv[1])
    return {
        "files": len(sizes),
        "lines": sum(sizes),
        "median_module_lines": statistics.median(sizes),
        "largest_module": {"module": largest[0], "lines": largest[1]},
        "functions_over_80_lines": sorted(
            ({"module": m, "function": f, "lines": n} for m, f, n in data["long_functions"]),
            key=lambda d: -d["lines"]),
        "circles": circles(graph),
        "upward_imports": [{"module": m, "imports": t} for m, t in upward],
        "imports_inside_functions": len(data["deferred"]),
        "imports_inside_functions_list": [
            {"module": m, "imports": t, "line": n} for m, t, n in sorted(data["deferred"])],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--verbose", "-v", action="store_true", help="list deferred imports")
    args = parser.parse_args()
    summary = summarize(collect())
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"files {summary['files']}, lines {summary['lines']}, "
              f"median module {summary['median_module_lines']} lines, largest "
              f"{summary['largest_module']['module']} ({summary['largest_module']['lines']})")
        print(f"functions over 80 lines: {len(summary['functions_over_80_lines'])}")
        for item in summary["functions_over_80_lines"]:
            print(f"  {item['module']}.{item['function']}: {item['lines']}")
        print(f"import circles: {len(summary['circles'])}")
        for component in summary["circles"]:
            print("  " + " <-> ".join(component))
        print(f"upward imports: {len(summary['upward_imports'])}")
        for item in summary["upward_imports"]:
            print(f"  {item['module']} -> {item['imports']}")
        print(f"imports of own modules inside functions: {summary['imports_inside_functions']}")
        if args.verbose:
            for item in summary["imports_inside_functions_list"]:
                print(f"  {item['module']}:{item['line']} -> {item['imports']}")
    if args.check and (summary["circles"] or summary["upward_imports"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
