"""The package's import graph: no cycles, counting imports inside functions too (a cycle
hidden in a function-level import still ties the modules together), and each such lazy
import says why it is lazy. The torch-free side (the report package) stays torch-free."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

PACKAGE = REPO / "gansweep"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}


def imports(path: Path, known: set[str]) -> list[tuple[str, int, bool]]:
    """(gansweep module imported, line, inside a function) for every import in ``path``:
    ``from a.b import c`` is ``a.b.c`` when that is a module, else ``a.b``."""
    tree = ast.parse(path.read_text())
    inside = {id(node) for fn in ast.walk(tree)
              if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
              for node in ast.walk(fn) if isinstance(node, (ast.Import, ast.ImportFrom))}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            targets = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known
                       else node.module for alias in node.names]
        else:
            continue
        found += [(t, node.lineno, id(node) in inside) for t in targets if t in known]
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: {t for t, _, _ in imports(path, set(mods)) if t != name}
            for name, path in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_even_through_function_level_imports():
    edges = graph()
    assert "gansweep.fid.evaluator" in edges["gansweep.runs.trainer"]  # the graph sees imports
    assert not cycles(edges), cycles(edges)


# the package's layers, lowest first (gansweep/__init__.py): a module imports only from its own
# layer or lower ones, counting imports inside functions
# the schemas sit beside the code they configure (gansweep.gan.schema, ...) but form a layer
# of their own: they may read the FID registry, and the run layer reads them
SCHEMA_MODULES = ("gansweep.schema", "gansweep.gan.schema", "gansweep.data.schema",
                  "gansweep.fid.schema", "gansweep.runs.schema")
LAYERS = (("gansweep", "gansweep.artifacts", "gansweep.checks", "gansweep.device",
           "gansweep.identity", "gansweep.pictures"),
          ("gansweep.gan",), ("gansweep.data",), ("gansweep.fid",), SCHEMA_MODULES,
          ("gansweep.report",), ("gansweep.runs",), ("gansweep.packed",), ("gansweep.sweep",),
          ("gansweep.bench", "gansweep.train"))


def layer(module: str) -> int:
    """The index in LAYERS of the longest prefix naming ``module``'s package or itself."""
    best = None
    for rank, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and name != "gansweep" \
                    or module == name:
                if best is None or len(name) > best[1]:
                    best = (rank, len(name))
    assert best is not None, f"{module} is in no layer of LAYERS: add it"
    return best[0]


def test_no_module_imports_from_a_higher_layer():
    upward = [f"{source} -> {target}" for source, targets in graph().items()
              for target in targets if layer(target) > layer(source)]
    assert not upward, "imports from a higher layer:\n" + "\n".join(sorted(upward))


def test_the_layer_check_sees_an_upward_import():
    assert layer("gansweep.gan.models") < layer("gansweep.runs.trainer")
    assert layer("gansweep.artifacts") == 0 and layer("gansweep.train") == len(LAYERS) - 1


def test_artifacts_and_checks_are_leaves():
    assert not graph()["gansweep.artifacts"]
    assert not graph()["gansweep.checks"]


def test_each_schema_sits_beside_the_code_it_builds():
    """A group option's schema lives in the package of the class its YAML builds
    (``conf/model/dcgan_mnist.yaml`` builds gansweep.gan.models.DCGAN: its schema is in
    gansweep.gan.schema), and every schema module is in the layer SCHEMA_MODULES."""
    import yaml

    import gansweep
    from gansweep import schema

    def targets(node):
        if isinstance(node, dict):
            if isinstance(node.get("_target_"), str):
                yield node["_target_"]
            for value in node.values():
                yield from targets(value)

    checked = 0
    loggers = tuple(("logger", name, node) for name, node in schema.LOGGER_SCHEMAS.items())
    for group, option, node in schema.SCHEMAS + loggers:
        assert node.__module__ in SCHEMA_MODULES, node
        path = REPO / "conf" / group / f"{option}.yaml"
        if not path.exists():
            continue  # a schema typed by several options (keras: one per release)
        module = next(targets(yaml.safe_load(path.read_text())), "").rsplit(".", 1)[0]
        if not module.startswith("gansweep."):
            continue  # the option builds nothing of ours (trainer)
        module = gansweep.MOVED.get(module, module)
        package = node.__module__.rsplit(".", 1)[0]
        assert module == package or module.startswith(package + "."), \
            (group, option, node.__module__, module)
        checked += 1
    assert checked >= 11, checked


def test_every_lazy_import_says_why():
    """An import inside a function keeps a command light or loads an optional package; a
    comment on its line, or between its function's ``def`` and it, says which."""
    silent = []
    for name, path in modules().items():
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    before = lines[fn.lineno - 1:node.lineno]
                    if not any("#" in line for line in before):
                        silent.append(f"{path.relative_to(REPO)}:{node.lineno}: "
                                      f"{lines[node.lineno - 1].strip()}")
    assert not silent, "import at the top, or say why it is lazy:\n" + "\n".join(silent)


def test_the_report_side_never_loads_torch():
    done = subprocess.run([sys.executable, "-c", "import sys, gansweep.report.aggregate; "
                           "print('torch' in sys.modules)"], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_composing_every_preset_imports_no_torch():
    """Hydra composes a config (and checks its types against the schemas) without torch: a
    config can be built, printed and validated where torch is slow to import or absent."""
    code = (
        "import sys\n"
        "from importlib.resources import files\n"
        "from hydra import compose, initialize_config_module\n"
        "with initialize_config_module(config_module='gansweep.conf', version_base='1.3'):\n"
        "    names = sorted(p.name[:-5] for p in files('gansweep.conf').joinpath('experiment')"
        ".iterdir() if p.name.endswith('.yaml'))\n"
        "    for name in names:\n"
        "        compose(config_name='train', overrides=[f'+experiment={name}'])\n"
        "print(len(names), 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    count, torch_loaded = done.stdout.split()
    assert int(count) >= 7 and torch_loaded == "False"


def test_module_paths_of_earlier_releases_resolve_to_the_modules_that_hold_them_now():
    """Configs, records and job hashes name classes by the paths they had (``_target_:
    gansweep.models.DCGAN``): each old path imports the same module object, and runs with
    ``python -m`` as before."""
    import importlib

    import gansweep

    for old, new in gansweep.MOVED.items():
        assert importlib.import_module(old) is importlib.import_module(new), old
        assert importlib.import_module(new).__spec__.name == new  # the alias leaves it alone
    done = subprocess.run([sys.executable, "-m", "gansweep.rescore", "--help"],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0 and "gansweep-eval" in done.stdout, done.stderr[-1000:]
