"""The package's imports go one way: entry points -> loops -> pipeline -> transports -> core -> leaves.

Read from the source (ast), every import counts, those inside functions too (a lazy import is
still a dependency), except under ``if TYPE_CHECKING:`` (annotations only) and the package's
``__version__``. A new module must be given a layer here: where it sits is a decision.
"""
from __future__ import annotations

import ast
import os
import pathlib
from typing import Dict, List, Set

ROOT = pathlib.Path(__file__).resolve().parent.parent / "lambdaric"

#: Lower numbers are imported by higher ones, never the other way round.
LAYERS = {
    # leaves: nothing of lambdaric but other leaves
    "lambdaric._native": 0, "lambdaric._codec": 0, "lambdaric.console": 0, "lambdaric.faults": 0,
    "lambdaric.protocol": 0, "lambdaric.answers": 0, "lambdaric.streamwire": 0, "lambdaric.traceenv": 0,
    "lambdaric.events": 0,
    # core: values and rules, no IO of the Runtime API
    "lambdaric.marshal": 1, "lambdaric.errors": 1, "lambdaric.context": 1, "lambdaric.handler": 1,
    "lambdaric.logsink": 1, "lambdaric.logs": 1,
    # transports: bytes and sockets
    "lambdaric.transport.base": 2, "lambdaric.transport.python": 2, "lambdaric.transport.native": 2,
    "lambdaric.transport": 2,
    # pipeline: the client, one invocation, and the layers over them
    "lambdaric.client": 3, "lambdaric.runtime": 3, "lambdaric.streaming": 3, "lambdaric.snapstart": 3,
    "lambdaric.shutdown": 3, "lambdaric.preload": 3,
    # loops: startup and Managed Instances
    "lambdaric.bootstrap": 4, "lambdaric.concurrency": 4,
    # edges: the public package, the CLI, the invoke client, sample events' CLI, the emulator
    "lambdaric": 5, "lambdaric.__main__": 5, "lambdaric.invoke": 5, "lambdaric.executions": 5, "lambdaric.events.cli": 5,
}
EMULATOR = "lambdaric.emulator"
#: What the emulator may use of the runtime's package: leaves only (it never runs the runtime's code).
EMULATOR_MAY_USE = {name for name, layer in LAYERS.items() if layer == 0}


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> Dict[str, pathlib.Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts}


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _walk(tree: ast.AST):  # type: ignore[no-untyped-def]
    """Every node, but not under ``if TYPE_CHECKING:``."""
    todo: List[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                todo.extend(child.orelse)
                continue
            todo.append(child)


def imports_of(name: str, path: pathlib.Path, known: Set[str]) -> Dict[str, List[str]]:
    """lambdaric modules ``name`` imports -> the names it takes from each."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: Dict[str, List[str]] = {}
    for node in _walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("lambdaric"):
                    found.setdefault(alias.name, [])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("lambdaric"):
                continue
            for alias in node.names:
                sub = target + "." + alias.name
                if sub in known:  # ``from . import marshal``: the submodule
                    found.setdefault(sub, [])
                elif target == "lambdaric" and alias.name == "__version__":
                    continue  # the version is a constant of the package
                else:
                    found.setdefault(target, []).append(alias.name)
    found.pop(name, None)
    return found


def graph() -> Dict[str, Dict[str, List[str]]]:
    mods = modules()
    known = set(mods) | {"lambdaric._native", "lambdaric._codec"}
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def layer(name: str) -> int:
    if name == EMULATOR or name.startswith(EMULATOR + "."):
        return 5
    return LAYERS[name]


def test_every_module_has_a_layer():
    missing = sorted(n for n in modules() if not n.startswith(EMULATOR) and n not in LAYERS)
    assert not missing, "give these modules a layer in tests/test_layers.py: %s" % missing


def test_imports_point_down_only():
    wrong = []
    for name, deps in graph().items():
        for dep in deps:
            if dep.startswith(EMULATOR) and name.startswith(EMULATOR):
                continue
            if layer(dep) > layer(name):
                wrong.append("%s (layer %d) imports %s (layer %d)" % (name, layer(name), dep, layer(dep)))
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    g = {name: set(deps) for name, deps in graph().items()}
    state: Dict[str, int] = {}
    cycles: List[str] = []

    def visit(node: str, path: List[str]) -> None:
        state[node] = 1
        for dep in sorted(g.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(" -> ".join(path[path.index(dep):] + [dep]) if dep in path else "%s -> %s" % (node, dep))
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for name in sorted(g):
        if name not in state:
            visit(name, [name])
    assert not cycles, "\n".join(cycles)


def test_the_emulator_uses_only_the_leaves():
    wrong = ["%s imports %s" % (name, dep) for name, deps in graph().items() if name.startswith(EMULATOR)
             for dep in deps if not dep.startswith(EMULATOR) and dep not in EMULATOR_MAY_USE]
    assert not wrong, "\n".join(wrong)


def test_no_private_name_crosses_a_module():
    """``from .x import _y`` reaches into another module's insides (compiled modules are
    private submodules by name, which is allowed: ``from ._native import ffi``)."""
    wrong = ["%s takes %s from %s" % (name, taken, dep) for name, deps in graph().items()
             for dep, names in deps.items() for taken in names if taken.startswith("_")]
    assert not wrong, "\n".join(wrong)


def test_the_graph_is_read_at_all():
    """A guard for the tests above: the reader finds the imports it should."""
    g = graph()
    assert "lambdaric.runtime" in g["lambdaric.bootstrap"]
    assert "lambdaric.client" in g["lambdaric.concurrency"]
    assert "lambdaric.streaming" in g["lambdaric.runtime"]  # (a lazy import counts)
    assert "lambdaric.runtime" not in g["lambdaric.streaming"]  # (an annotation-only one does not)
    assert os.path.basename(str(modules()["lambdaric"])) == "__init__.py"


def test_the_runtime_path_loads_no_client_library():
    """``requests`` serves ``lambdaric invoke`` only: the runtime's modules never load it (nor
    urllib3, http.client, logging, argparse or typing), so an image pays no import time for it."""
    import subprocess
    import sys

    modules = ["lambdaric.bootstrap", "lambdaric.runtime", "lambdaric.client", "lambdaric.concurrency",
               "lambdaric.streaming", "lambdaric.snapstart", "lambdaric.shutdown", "lambdaric.preload", "lambdaric.transport.python"]
    heavy = ("requests", "urllib3", "http.client", "logging", "argparse", "typing")
    code = "import sys\nimport %s\nprint(sorted(m for m in %r if m in sys.modules))" % (", ".join(modules), heavy)
    paths = [str(ROOT.parent)] + [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(paths)))
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_the_runtime_up_to_its_first_next_loads_no_re_idna_or_json_library(tmp_path):
    """A real ``python -m lambdaric`` on each transport, from start to its first ``GET /next``
    (the cold start Lambda bills): none of re, the idna codec (getaddrinfo given a str host
    loads it, with re, stringprep and unicodedata: ~6 ms), simplejson or decimal is imported.
    Run without site (an editable install's import hook loads re itself)."""
    import socket
    import subprocess
    import sys

    (tmp_path / "app.py").write_text("def handler(event, context):\n    return 1\n")
    site_paths = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    unwanted = {"re", "encodings.idna", "stringprep", "unicodedata", "simplejson", "decimal"}
    for transport in ("python", "native"):
        with socket.create_server(("127.0.0.1", 0)) as listener:
            listener.settimeout(30)
            env = dict(os.environ, AWS_LAMBDA_RUNTIME_API="127.0.0.1:%d" % listener.getsockname()[1],
                       LAMBDARIC_TRANSPORT=transport, PYTHONPATH=os.pathsep.join([str(ROOT.parent)] + site_paths))
            proc = subprocess.Popen([sys.executable, "-S", "-X", "importtime", "-m", "lambdaric", "app.handler"],
                                    cwd=str(tmp_path), env=env, stderr=subprocess.PIPE)
            try:
                conn, _ = listener.accept()
                assert conn.recv(100).startswith(b"GET /2018-06-01/runtime/invocation/next ")
                conn.close()
            finally:
                proc.kill()
                _, err = proc.communicate(timeout=30)
        loaded = {line.split("|")[-1].strip() for line in err.decode().splitlines() if line.startswith("import time:")}
        assert "lambdaric.runtime" in loaded, err[-2000:]
        assert not loaded & unwanted, (transport, sorted(loaded & unwanted))
