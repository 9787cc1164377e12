"""The layers of tinyviz as docs/architecture.md draws them: imports only flow down.

Read from the source with `ast` (every import, also those inside functions), so a new
module that imports upwards, a cycle between modules, or streamlit in the backend fails here.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tinyviz"
# bottom to top; a module may import its own layer and the layers below it
LAYERS = [
    {"errors", "io", "config", "runtime", "literature", "__init__"},
    {"data", "models"},
    {"runs"},
    {"explain"},  # below training: the trainer writes a finished run's analysis
    {"training"},
    {"demo"},
    {"cli", "__main__"},
]
# the exceptions, each with its reason (none left: `runs.resume` reads the resume state's
# counters for `runs.jobs`, below `training.state` which writes them)
ALLOWED: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"] or ["__init__"]
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """The tinyviz modules `path` imports, as dotted names relative to the package."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.startswith("tinyviz"):
                target = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:
                found.add(".".join(_existing([*target, alias.name])))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("tinyviz."):
                    found.add(".".join(_existing(alias.name.split(".")[1:])))
    return {f for f in found if f}


def _existing(parts: list[str]) -> list[str]:
    """The longest prefix of `parts` that is a module or package of tinyviz."""
    for n in range(len(parts), 0, -1):
        p = PACKAGE.joinpath(*parts[:n])
        if p.with_suffix(".py").exists() or (p / "__init__.py").exists():
            return parts[:n]
    return []


def layer(module: str) -> int:
    top = module.split(".")[0]
    return next(i for i, names in enumerate(LAYERS) if top in names)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {m: imports_of(p) for m, p in MODULES.items()}


def test_every_module_has_a_layer():
    for m in MODULES:
        layer(m)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_only_flow_down(module):
    for target in GRAPH[module]:
        if (module, target) in ALLOWED:
            continue
        assert layer(target) <= layer(module), f"{module} imports {target}, a higher layer"


def test_no_import_cycles():
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in GRAPH.get(m, ()):
            t = t if t in GRAPH else t.rsplit(".", 1)[0]
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path, m, t]))
            if t in GRAPH and not state.get(t):
                visit(t, [*path, m])
        state[m] = 2

    for m in GRAPH:
        if not state.get(m):
            visit(m, [])


def test_the_backend_never_imports_streamlit():
    for m, p in MODULES.items():
        tree = ast.parse(p.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not any(n.split(".")[0] == "streamlit" for n in names), m


def test_the_data_command_does_not_load_torch(tiny_zip):
    """`tinyviz data` checks an archive; it must not pay for torch and the model zoo."""
    code = (
        "import sys, json; from tinyviz.cli import main; rc = main(['data', sys.argv[1]]); "
        "print(json.dumps([rc, 'torch' in sys.modules, 'tinyviz.models' in sys.modules]))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(tiny_zip)], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1]) == [0, False, False]
