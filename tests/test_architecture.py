"""The shape of the code: layers as folders with imports pointing down only, torch and Qt where they belong,
small classes and functions, and a thin client that never loads torch."""
from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path


PACKAGE = Path(__file__).resolve().parents[1] / "avatarify"
# Bottom to top; a layer may import the layers below it and itself, never one above.
LAYERS = ("core", "model", "pipeline", "remote", "offline", "session", "gui", "cli")
# Packages that may be imported by one layer only.
ONLY_IN = {"torch": "model", "face_alignment": "model", "yaml": "model", "PyQt5": "gui", "argparse": "cli", "ray": "remote"}
MAX_METHODS = 25
MAX_FUNCTION_LINES = 60


@functools.cache
def modules() -> dict[str, ast.Module]:
    return {str(path.relative_to(PACKAGE.parent)): ast.parse(path.read_text()) for path in sorted(PACKAGE.rglob("*.py"))}


def layer_of(path: str) -> str | None:
    parts = Path(path).parts
    return parts[1] if len(parts) > 2 else None


def imported(path: str, tree: ast.Module) -> list[tuple[str, int]]:
    """Every module an import statement anywhere in the file names (lazy imports included), absolute."""
    package = Path(path).with_suffix("").parts[:-1] if not path.endswith("__init__.py") else Path(path).parts[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                name = ".".join(base + ([node.module] if node.module else []))
                found += [(f"{name}.{alias.name}" if not node.module else name, node.lineno) for alias in node.names]
            else:
                found.append((node.module or "", node.lineno))
    return found


def test_imports_only_point_down_and_third_parties_stay_in_their_layer() -> None:
    problems = []
    for path, tree in modules().items():
        layer = layer_of(path)
        for name, line in imported(path, tree):
            parts = name.split(".")
            if parts[0] == "avatarify" and len(parts) > 1 and parts[1] in LAYERS and layer in LAYERS:
                if LAYERS.index(parts[1]) > LAYERS.index(layer):
                    problems.append(f"{path}:{line} ({layer}) imports {name} from a layer above")
            owner = ONLY_IN.get(parts[0])
            if owner is not None and layer != owner:
                problems.append(f"{path}:{line} imports {parts[0]} outside {owner}/")
    assert problems == []


def test_every_module_lives_in_a_layer() -> None:
    stray = [path for path in modules() if layer_of(path) is None and Path(path).name not in ("__init__.py", "__main__.py")]
    assert stray == []


def test_classes_and_functions_stay_small() -> None:
    problems = []
    for path, tree in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                methods = sum(isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) for item in node.body)
                if methods > MAX_METHODS:
                    problems.append(f"{path}:{node.lineno} class {node.name} has {methods} methods")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    problems.append(f"{path}:{node.lineno} {node.name} is {lines} lines")
    assert problems == []


def test_no_import_cycles_between_modules() -> None:
    graph: dict[str, set[str]] = {}
    trees = modules()
    names = {path.removesuffix(".py").replace("/", ".").removesuffix(".__init__") for path in trees}
    for path, tree in trees.items():
        module = path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        targets = set()
        for name, _ in imported(path, tree):
            while name and name not in names:
                name = name.rpartition(".")[0]
            if name and name != module and not module.startswith(name + "."):
                targets.add(name)
        graph[module] = targets
    cycles = []

    def visit(node: str, trail: list[str], done: set[str]) -> None:
        if node in trail:
            cycles.append(trail[trail.index(node):] + [node])
            return
        if node in done:
            return
        for target in graph.get(node, ()):
            visit(target, trail + [node], done)
        done.add(node)

    finished: set[str] = set()
    for module in graph:
        visit(module, [], finished)
    assert cycles == []


THIN_MODULES = [  # the Qt-free ones first: each is checked right after its import, in one interpreter
    "avatarify.pipeline.pipeline", "avatarify.pipeline.camera", "avatarify.remote.client", "avatarify.remote.worker",
    "avatarify.session", "avatarify.offline.animate", "avatarify.cli.main", "avatarify.model",
    "avatarify.gui.app", "avatarify.gui.main_window",
]
IMPORT_ONE_BY_ONE = """
import importlib, sys
for module in sys.argv[1:]:
    importlib.import_module(module)
    print(module, 'torch' in sys.modules, 'PyQt5' in sys.modules)
"""


def test_importing_the_client_side_leaves_torch_out() -> None:
    """Torch never; Qt only once the GUI is imported."""
    out = subprocess.run([sys.executable, "-c", IMPORT_ONE_BY_ONE, *THIN_MODULES], capture_output=True, text=True, check=True)
    lines = [line.split() for line in out.stdout.splitlines()]
    assert [module for module, _, _ in lines] == THIN_MODULES
    for module, torch_loaded, qt_loaded in lines:
        assert torch_loaded == "False", f"importing {module} imports torch"
        assert module.startswith("avatarify.gui") or qt_loaded == "False", f"importing {module} imports Qt"


def test_the_cli_parser_and_help_need_neither_torch_nor_qt() -> None:
    code = ("import sys; from avatarify.cli.main import build_parser; build_parser();"
            "print(sorted(m for m in ('torch', 'PyQt5', 'zmq') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
