#!/usr/bin/env python3
"""Import circles among the source files of src/: prints each strongly connected set of files
(two or more files that reach each other through `use` paths) and exits 1 when there is one.

A file's imports are the crate paths it names: `use crate::a::b`, `use super::x`, `super::x::f`
inline, `self::y` in a mod.rs. A path names the deepest source file it reaches; a module's
`mod.rs` counts only for what it defines itself, so `use super::Thing` where `Thing` is only
re-exported is followed to the defining file. `#[cfg(test)]` modules and files named `tests*.rs`
are left out: a test may reach anywhere.

Usage: scripts/import_cycles.py [src-dir]    (default: the crate's src/)
       scripts/import_cycles.py --self-test  (a tree with a circle is caught, one without passes)
"""
import os
import re
import sys

SRC = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))


def module_of(path):
    rel = os.path.relpath(path, SRC)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


def files():
    out = {}
    for root, _, names in os.walk(SRC):
        for n in names:
            if not n.endswith(".rs"):
                continue
            p = os.path.join(root, n)
            if root.startswith(os.path.join(SRC, "bin")):
                continue
            if n.startswith("tests") or "/tests/" in p[len(SRC):]:
                continue
            out[module_of(p)] = p
    return out


def strip_tests(text):
    """Drop `#[cfg(test)] mod x { ... }` blocks and comments."""
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def use_paths(text):
    """Every crate path a file names, as lists of segments from `crate`, `super` or `self`."""
    paths = []

    def expand(prefix, body):
        # body of a `use` after the prefix: `a::b`, `{a, b::{c, d}}`, `a as b`
        body = body.strip()
        if body.startswith("{"):
            depth, cur, parts = 0, "", []
            for ch in body[1:-1]:
                if ch == "," and depth == 0:
                    parts.append(cur)
                    cur = ""
                    continue
                depth += {"{": 1, "}": -1}.get(ch, 0)
                cur += ch
            parts.append(cur)
            for part in parts:
                if part.strip():
                    expand(prefix, part)
            return
        m = re.match(r"([\w:]*?)(::)?(\{.*\})$", body, re.S)
        if m and m.group(3):
            seg = [s for s in m.group(1).split("::") if s]
            expand(prefix + seg, m.group(3))
            return
        body = re.split(r"\s+as\s+", body)[0]
        paths.append(prefix + [s for s in body.split("::") if s and s != "*"])

    for m in re.finditer(r"\buse\s+((?:crate|super|self)(?:::super)*)::([^;]+);", text, re.S):
        expand(m.group(1).split("::"), m.group(2))
    # `use child::x` in a mod.rs: a path relative to the module itself (kept when `child` is one)
    for m in re.finditer(r"\buse\s+(\w+)::([^;]+);", text, re.S):
        if m.group(1) not in ("crate", "super", "self", "std", "core", "alloc"):
            expand(["self", m.group(1)], m.group(2))
    for m in re.finditer(r"(?<![\w:])((?:crate|super)(?:::super)*)::((?:\w+::)*\w+)", text):
        before = text[max(0, m.start() - 8) : m.start()]
        if re.search(r"\buse\s+$", before) or re.search(r"\(in\s+$", before):
            continue  # a `use` (read above) or a visibility, `pub(in crate::x)`
        paths.append(m.group(1).split("::") + m.group(2).split("::"))
    return paths


def defines(text, name):
    return re.search(
        r"\b(fn|struct|enum|trait|type|const|static|mod)\s+" + re.escape(name) + r"\b", text
    ) or re.search(r"macro_rules!\s*" + re.escape(name) + r"\b", text)


def reexport_source(text, name):
    """The child module a mod.rs re-exports `name` from (`pub use child::{.., name, ..}`)."""
    for m in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+(?:self::)?(\w+)::([^;]+);", text, re.S):
        if re.search(r"\b" + re.escape(name) + r"\b", m.group(2)):
            return m.group(1)
    return None


def main():
    mods = files()
    texts = {m: strip_tests(open(p).read()) for m, p in mods.items()}
    edges = {m: set() for m in mods}
    for m, text in texts.items():
        for path in use_paths(text):
            cur, rest = (m, list(path))
            if rest[0] == "crate":
                cur, rest = (), rest[1:]
            elif rest[0] == "self":
                rest = rest[1:]
            while rest and rest[0] == "super":
                cur, rest = cur[:-1], rest[1:]
            while rest:
                if cur + (rest[0],) in mods:
                    cur, rest = cur + (rest[0],), rest[1:]
                    continue
                # a name a mod.rs (or lib.rs) only re-exports: follow it to where it comes from
                if cur in mods and rest and not defines(texts[cur], rest[0]):
                    src = reexport_source(texts[cur], rest[0])
                    if src and cur + (src,) in mods:
                        cur = cur + (src,)
                        continue
                break
            if cur in mods and cur != m and (path[0] != "self" or len(cur) > len(m)):
                edges[m].add(cur)
    # Tarjan
    index, low, stack, on, sccs, n = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
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
                sccs.append(comp)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    name = lambda m: os.path.relpath(mods[m], SRC)
    for comp in sccs:
        print("import circle among:", ", ".join(sorted(name(c) for c in comp)))
        for c in sorted(comp):
            inside = sorted(name(t) for t in edges[c] if t in comp)
            print(f"  {name(c)} -> {', '.join(inside)}")
    print(f"{len(mods)} files, {sum(len(e) for e in edges.values())} imports, {len(sccs)} circles")
    return 1 if sccs else 0


def self_test():
    """Trees with and without a circle, through each kind of path the scan follows."""
    import tempfile

    global SRC
    cases = {
        # a facade mod.rs re-exporting what its children define, children importing siblings
        "none": {
            "lib.rs": "mod a;\n",
            "a/mod.rs": "mod x;\nmod y;\npub use x::T;\n",
            "a/x.rs": "use super::y::U;\npub struct T;\n",
            "a/y.rs": "pub(in crate::a) struct U;\n#[cfg(test)]\nmod tests {\n    use crate::a::T;\n}\n",
        },
        # a child importing a name its mod.rs defines, the mod.rs importing the child
        "through mod.rs": {
            "lib.rs": "mod a;\n",
            "a/mod.rs": "mod x;\npub use x::T;\npub struct E;\n",
            "a/x.rs": "use super::E;\npub struct T;\n",
        },
        # two siblings, one by a re-exported name and one by an inline `crate::` path
        "siblings": {
            "lib.rs": "mod a;\nmod b;\n",
            "a/mod.rs": "mod x;\npub use x::T;\n",
            "a/x.rs": "pub struct T;\nfn f() { crate::b::g(); }\n",
            "b.rs": "use crate::a::T;\npub fn g() {}\n",
        },
    }
    for name, tree in cases.items():
        with tempfile.TemporaryDirectory() as d:
            for path, text in tree.items():
                os.makedirs(os.path.dirname(os.path.join(d, path)), exist_ok=True)
                with open(os.path.join(d, path), "w") as f:
                    f.write(text)
            SRC = d
            got = main()
        want = 0 if name == "none" else 1
        assert got == want, f"self-test {name!r}: exit {got}, expected {want}"
    print("self-test passed")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(self_test())
    if sys.argv[1:]:
        SRC = os.path.normpath(sys.argv[1])
    sys.exit(main())
