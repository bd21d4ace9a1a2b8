"""The sections of recovercr3.py and the names each uses (for test_project).

A section begins at a header line "# N. Title ---..." (a comment, N its number in the
table of contents of the module docstring). A name is defined by the first module-
level statement that binds it (def, class, assignment, import); a section uses it
when any statement of the section reads it (in a function body too), unless it is
that function's own (a parameter, or bound in it).

    python3 tests/sections.py [recovercr3.py]    # the sections, then forward uses
"""

import ast
import re
import sys
from pathlib import Path

HEADER = re.compile(r"# ([0-9]+)\. (.+?) -+$")


def sections(source):
    """[(first line, number, title)] of the section headers, in file order."""
    return [(index + 1, int(m.group(1)), m.group(2))
            for index, line in enumerate(source.splitlines())
            for m in [HEADER.match(line)] if m]


def _bound(node):
    """Names a statement binds at module level (in the branches of an if or a try too)."""
    if isinstance(node, (ast.If, ast.Try, ast.With)):
        branches = [node.body, getattr(node, "orelse", []), getattr(node, "finalbody", [])]
        branches += [handler.body for handler in getattr(node, "handlers", [])]
        return set().union(*(_bound(sub) for branch in branches for sub in branch))
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    names = set()
    targets = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        targets = [node.target]
    for target in targets:
        for sub in ast.walk(target):
            if isinstance(sub, ast.Name):
                names.add(sub.id)
    return names


def _own_names(function):
    """A function's parameters and the names it binds (its locals)."""
    args = function.args
    own = {a.arg for a in args.args + args.kwonlyargs + getattr(args, "posonlyargs", [])}
    own.update(a.arg for a in (args.vararg, args.kwarg) if a is not None)
    for sub in ast.walk(function):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
            own.add(sub.id)
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                and sub is not function:
            own.add(sub.name)
        elif isinstance(sub, ast.arg):
            own.add(sub.arg)
        elif isinstance(sub, ast.ExceptHandler) and sub.name:
            own.add(sub.name)
    globals_ = {name for sub in ast.walk(function) if isinstance(sub, ast.Global)
                for name in sub.names}
    return own - globals_


def _uses(node, own=frozenset()):
    """(name, line) of every name node reads, but a function's own."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        inner = own | (_own_names(node) if not isinstance(node, ast.Lambda) else
                       {a.arg for a in node.args.args})
        heads = list(getattr(node, "decorator_list", [])) + node.args.defaults \
            + [d for d in node.args.kw_defaults if d is not None]
        for head in heads:
            yield from _uses(head, own)
        body = node.body if isinstance(node.body, list) else [node.body]
        for statement in body:
            yield from _uses(statement, inner)
        return
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
        if node.id not in own:
            yield node.id, node.lineno
        return
    for child in ast.iter_child_nodes(node):
        yield from _uses(child, own)


def forward_uses(source):
    """[(line, name, the section using it, the later section defining it)]."""
    heads = sections(source)
    starts = [line for line, _, _ in heads]

    def section_at(line):
        index = max((i for i, start in enumerate(starts) if start <= line), default=None)
        return heads[index][1] if index is not None else 0

    tree = ast.parse(source)
    defined = {}
    for node in tree.body:
        for name in _bound(node):
            defined.setdefault(name, section_at(node.lineno))
    found = []
    for node in tree.body:
        here = section_at(node.lineno)
        for name, line in _uses(node):
            there = defined.get(name)
            if there is not None and there > here:
                found.append((line, name, here, there))
    return found


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else
                Path(__file__).resolve().parents[1] / "recovercr3.py")
    text = path.read_text(encoding="utf-8")
    for line, number, title in sections(text):
        print("%6d  %2d. %s" % (line, number, title))
    for line, name, here, there in forward_uses(text):
        print("line %d: section %d uses %s of section %d" % (line, here, name, there))
