"""The package's layering, read from its source: every import (module level or inside a function) goes from a
higher layer to a lower one, never sideways between two task folders, and no chain of imports comes back to where it
started.

    api.py                            5.5 (bk.train/evaluate/…: runs the commands' own parsers, so above cli)
    cli                               5
    tools/                            4   (commands over any model or task)
    serve/                            4   (`backbonekit serve`: any task's model over HTTP, through the registry)
    tasks.py                          3.5 (the tasks by name: what a checkpoint records → its load())
    classification/ detection/ sequence/   3   (tasks: never import each other)
    explain/                          2.5 (what the tasks' explanations share: CAM methods, layers, drawing)
    models/, training/                2
    nn/, weights.py, io/              1
    errors.py                         0
"""
import ast
from pathlib import Path

import backbonekit

ROOT = Path(backbonekit.__file__).parent
from backbonekit.tasks import BUILTIN

# The task folders are the registry's (backbonekit.tasks), not a list of their own here.
TASK_FOLDERS = {module.split(".")[1] for module in BUILTIN}
LAYERS = {"errors": 0, "nn": 1, "weights": 1, "io": 1, "models": 2, "training": 2, "explain": 2.5,
          **{t: 3 for t in TASK_FOLDERS},
          "tasks": 3.5, "tools": 4, "serve": 4, "cli": 5, "api": 5.5, "__main__": 6}


def _module_name(path: Path) -> str:
    parts = ["backbonekit", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}  # `from pkg import module`
    return {name for name in found if name.startswith("backbonekit.")}


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    return {name: {i for i in _imports(path) if i in modules and i != name} for name, path in modules.items()}


def _area(module: str) -> str:
    return module.split(".")[1] if "." in module else "__init__"


def test_every_area_has_a_layer():
    assert {_area(m) for m in _graph()} - {"__init__"} <= set(LAYERS)


def test_imports_go_down_the_layers_and_never_between_tasks():
    wrong = []
    for module, imports in _graph().items():
        if _area(module) == "__init__":
            continue
        for target in imports:
            a, b = _area(module), _area(target)
            if a != b and (b == "__init__" or LAYERS[b] >= LAYERS[a]):
                wrong.append(f"{module} → {target} (layer {LAYERS[a]} → {LAYERS.get(b, '?')})")
    assert not wrong, "imports against the layering:\n" + "\n".join(sorted(wrong))


def test_no_import_cycle():
    graph, state, cycles = _graph(), {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" → ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_command_line_parses_without_torch():
    import subprocess
    import sys

    code = ("import sys; from backbonekit.cli import build_parser; build_parser(); "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_the_training_layer_imports_a_task_only_through_the_registry():
    # A by-name import is an arrow the graph above cannot see: only the task registry may make one (a batch-size
    # trial process finding its task's spec again), and the batch-size search its own step factory.
    allowed = {"task_spec.py", "autobatch.py"}
    found = {p.name for p in (ROOT / "training").glob("*.py") if "import_module" in p.read_text()}
    assert found <= allowed, found - allowed


def test_no_function_is_longer_than_60_lines():
    long = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{_module_name(path)}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not long, "split these into named pieces:\n" + "\n".join(long)


def _task_names_in(tree: ast.AST, names: set[str]) -> tuple[list[list[str]], list[ast.Constant]]:
    """(the literal tuples, lists, sets and dicts that hold two or more task names; every string that is a task
    name), leaving out attribute names (``getattr(model, "detect")`` is a method, not the task)."""
    attributes = {id(node.args[1]) for node in ast.walk(tree) if isinstance(node, ast.Call) and len(node.args) > 1
                  and getattr(node.func, "id", "") in ("getattr", "hasattr", "setattr")}
    lists, named = [], []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)):
            items = [*node.keys, *node.values] if isinstance(node, ast.Dict) else node.elts
            hits = [i.value for i in items if isinstance(i, ast.Constant) and i.value in names]
            if len(hits) >= 2:
                lists.append(hits)
        elif isinstance(node, ast.Constant) and node.value in names and id(node) not in attributes:
            named.append(node)
    return lists, named


def test_no_list_of_task_names_outside_the_registry():
    """A list of task names elsewhere is one a task from outside (an entry point) is missing from: outside
    tasks.py and the task folders no module holds one, and below the tasks (training/, tools/) none names a task."""
    from backbonekit.tasks import all_tasks

    names = set(all_tasks())
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        module = _module_name(path)
        if _area(module) in TASK_FOLDERS | {"tasks"}:
            continue
        lists, named = _task_names_in(ast.parse(path.read_text()), names)
        found += [f"{module}: a list of task names {hits}" for hits in lists]
        if _area(module) in ("training", "tools"):
            found += [f"{module}:{node.lineno}: names the task {node.value!r}" for node in named]
    assert not found, "read these from the task registry (backbonekit.tasks):\n" + "\n".join(found)


def test_the_task_names_check_finds_the_lists_it_is_for():
    names = {"classify", "detect", "sequence"}
    old_preflight = ('task = word if word in ("classify", "detect", "sequence") else "classify"\n'
                     'fits = {"pretrained": task, "pretrained_backbone": "classify", "teacher": "classify"}\n')
    lists, named = _task_names_in(ast.parse(old_preflight), names)
    assert sorted(lists) == [["classify", "classify"], ["classify", "detect", "sequence"]] and len(named) == 6
    assert _task_names_in(ast.parse('call = getattr(model, "detect", model)'), names) == ([], [])
