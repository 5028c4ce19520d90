"""The crate and file structure of the workspace, read from the sources: which
file of a crate references which (by `crate::`, `super::` and child-module
paths), the circles among them, and line counts. Used by test_architecture.py."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRATES = ROOT / "crates"


def crate_files(crate):
    """Module path ('' for the crate root) to file, for every file under src/."""
    src = CRATES / crate / "src"
    out = {}
    for p in sorted(src.rglob("*.rs")):
        parts = list(p.relative_to(src).with_suffix("").parts)
        if parts[-1] in ("mod", "lib", "main"):
            parts = parts[:-1]
        out["::".join(parts)] = p
    return out


def _code(path):
    # Comments name other modules without importing them.
    return re.sub(r"//[^\n]*", "", path.read_text())


def _references(module, other, code):
    segs = other.split("::")
    path = "::".join(segs)
    if re.search(r"crate::" + path + r"\b", code):
        return True
    for group in re.finditer(r"crate::\{([^}]*)\}", code, re.S):
        if re.search(r"(^|[\s,{])" + path + r"\b", group.group(1)):
            return True
    parent = module.split("::") if module else []
    # A child module used from its parent (`mod x;` then `x::...`).
    if segs[:-1] == parent and re.search(r"(^|[^:\w])" + segs[-1] + r"::", code):
        return True
    # A sibling through `super::`.
    if module and segs[:-1] == parent[:-1] and re.search(r"super::" + segs[-1] + r"\b", code):
        return True
    return False


def file_graph(crate):
    files = crate_files(crate)
    code = {m: _code(p) for m, p in files.items()}
    return {
        m: {o for o in files if o not in (m, "") and _references(m, o, code[m])}
        for m in files
    }


def circles(graph):
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def rust_lines(crate):
    return sum(len(p.read_text().splitlines()) for p in (CRATES / crate).rglob("*.rs"))


def crates():
    return sorted(p.name for p in CRATES.iterdir() if (p / "Cargo.toml").exists())
