"""The pipeline's folders are its layers, and imports point only down: a module imports from its own layer
or an earlier one (``LAYERS``), never a later one, and no modules import each other in a circle. Every
import counts, the ones inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

LAYERS = ("core", "record", "score", "run", "report", "stack", "team")  # bottom to top (ggevo.pipeline's docstring)
BELOW = ("ea", "lit", "data", "models")  # packages under the pipeline: they never import it
SRC = ROOT / "src"


def module_name(path: Path, src: Path) -> str:
    parts = path.relative_to(src).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, src: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``path``, function-local ones included; ``from P import m``
    names the submodule ``P.m`` where ``m`` is one, a relative import is made absolute."""
    package = module_name(path, src).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1] if node.level else [])
            module = ".".join(p for p in (base, node.module or "") if p)
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                is_module = any((src / sub.replace(".", "/")).with_suffix(s).exists() for s in (".py", ""))
                found.append((node.lineno, sub if is_module else module))
    return found


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if parts[:2] == ["ggevo", "pipeline"] and len(parts) > 2 else None


def violations(src: Path) -> list[str]:
    """One line per import that points up, per module outside a layer and per import cycle in
    ``src/ggevo/pipeline`` (and per import of the pipeline from a package below it)."""
    pipeline = src / "ggevo" / "pipeline"
    found, graph = [], {}
    if (src / "ggevo" / "cli.py").exists():
        found.append("src/ggevo/cli.py exists again: the command-line plumbing lives in ggevo.pipeline.run.cli")
    for below in BELOW:
        for path in sorted((src / "ggevo" / below).rglob("*.py")):
            for line, module in imported(path, src):
                if module.startswith("ggevo.pipeline"):
                    found.append(f"{module_name(path, src)} (line {line}) imports {module}: ggevo.{below} is below "
                                 "the pipeline")
    for path in sorted(pipeline.rglob("*.py")):
        name = module_name(path, src)
        own = layer_of(name)
        if name == "ggevo.pipeline":
            own = LAYERS[0]  # the package's docstring: it may import nothing above the base layer
        elif own not in LAYERS:
            found.append(f"{name} is in no layer: put it in one of {', '.join(LAYERS)} (or add its folder to "
                         "LAYERS in its place)")
            continue
        edges = graph.setdefault(name, set())
        for line, module in imported(path, src):
            layer = layer_of(module)
            if layer is None:
                continue
            edges.add(module)
            if layer in LAYERS and LAYERS.index(layer) > LAYERS.index(own):
                found.append(f"{name} (line {line}) imports {module}: layer {own} may not import the later "
                             f"layer {layer}")
    found += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected part of ``graph`` that has one (depth-first search)."""
    found, state = [], {}  # state: 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def test_every_import_in_the_pipeline_points_down():
    found = violations(SRC)
    assert not found, "\n".join(found)


def test_every_layer_folder_is_a_package_in_the_order():
    folders = {p.name for p in (SRC / "ggevo" / "pipeline").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(LAYERS)
    assert all((SRC / "ggevo" / "pipeline" / layer / "__init__.py").is_file() for layer in LAYERS)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name in ("__init__.py", *(f"{layer}/__init__.py" for layer in LAYERS)):
        files.setdefault(f"ggevo/pipeline/{name}", '"""a layer"""\n')
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_an_upward_import_inside_a_function_is_named(tmp_path):
    src = _tree(tmp_path, {
        "ggevo/pipeline/core/paths.py": "def f():\n    from ggevo.pipeline.run.build import build\n",
        "ggevo/pipeline/run/build.py": "from ggevo.pipeline.core import paths\n\ndef build():\n    pass\n",
    })
    assert violations(src) == ["ggevo.pipeline.core.paths (line 2) imports ggevo.pipeline.run.build: layer core "
                               "may not import the later layer run",
                               "import cycle: ggevo.pipeline.core.paths -> ggevo.pipeline.run.build -> "
                               "ggevo.pipeline.core.paths"]


def test_a_sideways_cycle_a_module_outside_the_layers_and_the_old_cli_are_named(tmp_path):
    src = _tree(tmp_path, {
        "ggevo/pipeline/record/a.py": "from . import b\n",
        "ggevo/pipeline/record/b.py": "from ggevo.pipeline.record.a import x\n",
        "ggevo/pipeline/loose.py": "",
        "ggevo/cli.py": "",
        "ggevo/ea/op.py": "import ggevo.pipeline.core.paths\n",
    })
    assert violations(src) == [
        "src/ggevo/cli.py exists again: the command-line plumbing lives in ggevo.pipeline.run.cli",
        "ggevo.ea.op (line 1) imports ggevo.pipeline.core.paths: ggevo.ea is below the pipeline",
        "ggevo.pipeline.loose is in no layer: put it in one of core, record, score, run, report, stack, team "
        "(or add its folder to LAYERS in its place)",
        "import cycle: ggevo.pipeline.record.a -> ggevo.pipeline.record.b -> ggevo.pipeline.record.a",
    ]
