"""The package's layers: imports run one way, no import cycles, no module hidden behind a
function of the same name, and a command line that answers without the heavy libraries.

The layers, bottom to top: errors -> arch, data -> train -> probes -> diagnosis -> space ->
study -> export -> report -> cli. Every import counts, function-level and ``TYPE_CHECKING``
ones included: a lazy import still ties a lower layer to a higher one.
"""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import nasdepth

PACKAGE = Path(nasdepth.__file__).parent
ROOT = PACKAGE.parent
LAYERS = {"errors": 0, "redact": 0, "lazy": 0, "yamlfile": 1, "outpath": 1, "arch": 1, "data": 1,
          "train": 2, "probes": 3, "diagnosis": 4, "space": 5, "study": 6, "export": 7,
          "report": 8, "cli": 9,
          "sklearn": 9}  # the scikit-learn face: beside the CLI, over study, export, report
TOP = 10  # ``nasdepth`` itself (the lazy facade) and ``__main__``
HEAVY = ("torch", "optuna", "sklearn", "pandas", "seaborn", "matplotlib")
#: the one cycle left, inside one package: ``ArchConfig.summary`` asks the block registry for
#: layer counts through a function-level import (the blocks import the config at module level)
ALLOWED_CYCLE_EDGES = {("nasdepth.arch.config", "nasdepth.arch.blocks")}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported nasdepth module, line) for every import statement anywhere in ``path``;
    ``from pkg import name`` counts as ``pkg.name`` where that is a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES
                     else node.module for a in node.names]
        else:
            continue
        found += [(n, node.lineno) for n in names if n.split(".")[0] == "nasdepth"]
    return found


def _python(code: str) -> tuple[subprocess.CompletedProcess, Any]:
    """Run ``code`` in a fresh interpreter (nothing imported yet); it prints one JSON line,
    last, on stderr (stdout is the command line's)."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert lines, proc
    try:
        return proc, json.loads(lines[-1])
    except json.JSONDecodeError:
        raise AssertionError(proc.stderr) from None


def _layer(module: str) -> tuple[int, str]:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return TOP, "nasdepth"
    assert parts[1] in LAYERS, f"{module}: a part of no layer; add it to LAYERS"
    return LAYERS[parts[1]], parts[1]


def test_the_checker_sees_function_level_imports() -> None:
    imports = dict(_imports(PACKAGE / "cli" / "run.py"))
    assert "nasdepth.study.study_file" in imports  # imported inside main()


def test_imports_run_one_way() -> None:
    wrong = []
    for module, path in MODULES.items():
        level, part = _layer(module)
        for target, line in _imports(path):
            t_level, t_part = _layer(target)
            if t_level > level or (t_level == level and t_part != part):
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_no_import_cycles() -> None:
    graph = {m: {t for t, _ in _imports(p) if t in MODULES and t != m
                 and (m, t) not in ALLOWED_CYCLE_EDGES} for m, p in MODULES.items()}
    # Tarjan's strongly connected components, iteratively
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    assert not cycles, f"modules that import each other: {cycles}"


def test_lower_layers_load_no_higher_layer() -> None:
    """Importing a layer loads no module of a layer above it (``arch``, ``data`` and ``train``
    load nothing of ``study``, ``report`` or ``cli``)."""
    order = ["errors", "arch", "data", "train", "probes", "diagnosis", "space", "study",
             "report", "cli"]
    code = (
        "import importlib, json, sys\n"
        "out = {}\n"
        f"for part in {order!r}:\n"
        "    importlib.import_module('nasdepth.' + part)\n"
        "    out[part] = sorted({m.split('.')[1] for m in sys.modules\n"
        "                        if m.startswith('nasdepth.') and m != 'nasdepth.__main__'})\n"
        "print(json.dumps(out), file=sys.stderr)\n"
    )
    _, loaded = _python(code)
    for part, parts in loaded.items():
        above = [p for p in parts if LAYERS[p] > LAYERS[part]]
        assert not above, f"importing nasdepth.{part} loads nasdepth.{above}"
    for low in ("arch", "data", "train"):
        assert not {"study", "report", "cli"} & set(loaded[low])


def test_no_module_is_hidden_by_a_function_of_its_name() -> None:
    hidden = []
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="nasdepth."):
        if info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
        parent, _, name = info.name.rpartition(".")
        value = getattr(sys.modules[parent], name)
        if not isinstance(value, types.ModuleType):
            hidden.append(f"{parent}.{name} is a {type(value).__name__}, not the module")
    assert not hidden, hidden


def test_the_lazy_top_level_keeps_every_public_name() -> None:
    code = (
        "import json, sys\n"
        "import nasdepth\n"
        "before = 'torch' in sys.modules\n"
        "listed = [n for n in nasdepth.__all__ if n in dir(nasdepth)]\n"
        "part = nasdepth.errors.__name__  # a part loads on first use too\n"
        "from nasdepth import *  # noqa\n"
        "from nasdepth import diagnose, cross_validate\n"
        "same = [diagnose is nasdepth.diagnosis.diagnose,  # parts load as attributes\n"
        "        cross_validate is nasdepth.train.cross_validate]\n"
        "print(json.dumps({'torch_before': before, 'listed': listed, 'same': same,\n"
        "                  'all': nasdepth.__all__, 'part': part}), file=sys.stderr)\n"
    )
    _, out = _python(code)
    assert not out["torch_before"]  # ``import nasdepth`` alone imports no torch
    assert out["listed"] == out["all"] and out["same"] == [True, True]
    assert out["part"] == "nasdepth.errors"
    assert out["all"] == nasdepth.__all__
    for name in nasdepth.__all__:
        assert getattr(nasdepth, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = nasdepth.nope  # type: ignore[attr-defined]


SPACES = ["search_spaces/quickstart.yaml", "search_spaces/block_zoo.yaml",
          "search_spaces/sequence.yaml", "search_spaces/tabular_mlp.yaml"]
TYPO_SPACE = "depth: {type: int, low: 1, high: 4}\nblock: {choices: [plain, residul]}\n"


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["diagnose", "--help"],
                                  ["run", "missing.yaml"], ["spaces", "check", "missing.yaml"],
                                  ["spaces", "check", *SPACES], ["spaces", "check", "TYPO"]])
def test_the_cli_answers_without_heavy_imports(argv: list[str], tmp_path: Path) -> None:
    """Help, a bad-input error and a whole ``spaces check`` (the blocks' own rules, checked
    without building them) load none of the heavy libraries."""
    typo = tmp_path / "typo.yaml"
    typo.write_text(TYPO_SPACE)
    argv = [str(typo) if a == "TYPO" else a for a in argv]
    code = (
        "import json, sys\n"
        "from nasdepth.cli import main\n"
        "try:\n"
        f"    code = main({argv!r})\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(json.dumps({'code': code, 'heavy': heavy}), file=sys.stderr)\n"
    )
    proc, out = _python(code)
    assert out["heavy"] == [], (argv, out)
    ok = "--help" in argv or argv[-1] in SPACES
    assert out["code"] == (0 if ok else 2), proc.stderr
    if "--help" in argv:
        assert "usage: nasdepth" in proc.stdout
        if argv == ["--help"]:
            for command in ("arch", "diagnose", "report", "run", "spaces", "sweep"):
                assert command in proc.stdout
    elif ok:
        assert proc.stdout.count("distinct architectures") == len(SPACES), proc.stdout
    else:
        assert "Traceback" not in proc.stderr
        assert ("missing.yaml" in proc.stderr if "missing.yaml" in argv
                else "'residul'" in proc.stderr and "Did you mean 'residual'" in proc.stderr)


def test_the_layout_table_lists_every_module() -> None:
    text = (ROOT / "docs" / "layout.md").read_text()
    rows = [line.split("|")[1].strip().strip("`") for line in text.splitlines()
            if line.startswith("| `")]
    listed = {r if r.startswith("nasdepth/") else f"nasdepth/{r}" for r in rows}
    files = {str(p.relative_to(ROOT)) for p in MODULES.values()}
    modules = {f for f in files if not f.endswith("/__init__.py") or f == "nasdepth/__init__.py"}
    assert not modules - listed, f"add to docs/layout.md: {sorted(modules - listed)}"
    assert not listed - files, f"no such module (docs/layout.md): {sorted(listed - files)}"
