#!/usr/bin/env python3
"""Reports import cycles between the modules of each crate: an edge A -> B for every
`crate::B` path written in module A (top-level modules, and the submodules of each directory
module among themselves). Exits 1 if any cycle exists. Usage: scripts/module-cycles.py [crate dirs]"""
import os, re, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = sys.argv[1:] or [
    "protocol", "store", "orchestrator", "lambda-handler-sdk", "localstack-tests",
    "localstack-tests/test-services", "bench", "cli", "testing",
]

def modules(src):
    """Every .rs file under src with its module path (lib.rs/main.rs/mod.rs are their dir)."""
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)[:-3].split(os.sep)
            if rel[-1] in ("mod", "lib", "main"):
                rel = rel[:-1]
            if rel and rel[0] == "bin":
                continue
            yield os.path.join(dirpath, f), rel

def cycles(graph):
    found, state = [], {}
    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2
    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found

failed = False
for crate in CRATES:
    src = os.path.join(ROOT, crate, "src")
    edges = {}
    for path, mod in modules(src):
        text = open(path, encoding="utf-8").read()
        text = re.sub(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", "", text, flags=re.S)
        refs = set(re.findall(r"crate::((?:\w+::)*\w+)", text))
        for ref in refs:
            target = ref.split("::")
            # Compare at the level where the two paths part: siblings under a common parent.
            common = 0
            while common < min(len(mod), len(target)) and mod[common] == target[common]:
                common += 1
            if common < len(mod) and common < len(target):
                a, b = "::".join(mod[: common + 1]), "::".join(target[: common + 1])
                edges.setdefault(a, set()).add(b)
    found = cycles(edges)
    for cycle in found:
        failed = True
        print(f"{crate}: import cycle {' -> '.join(cycle)}")
    if not found:
        print(f"{crate}: no import cycles between its modules ({len(edges)} modules import others)")
sys.exit(1 if failed else 0)
