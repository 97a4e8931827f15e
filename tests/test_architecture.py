"""The shape of the code: no import circle in ``plugins/safeload`` (function-level imports
included), no file over :data:`MAX_FILE_LINES` lines and no class over
:data:`MAX_CLASS_LINES` where a reader works, and the import diagram of
docs/architecture.md the one the code has. Read from the source: nothing is imported."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_FILE_LINES = 800
MAX_CLASS_LINES = 400
#: the folders whose files a reader opens
FOLDERS = ("plugins", "dags", "tests", "bench", "include")


def _import_graph():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "docs" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _files() -> list[Path]:
    """The files of FOLDERS that git tracks or would track (not those it ignores)."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *FOLDERS],
                         cwd=ROOT, capture_output=True, text=True, check=True, timeout=60).stdout
    return [ROOT / name for name in out.splitlines() if (ROOT / name).is_file()]


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None  # a binary file (a Parquet fixture): nobody reads it as lines


def test_no_import_circle_in_the_package():
    graph = _import_graph()
    cycle = graph.find_cycle(graph.module_graph())
    assert cycle is None, ("import circle: " + " -> ".join(cycle) +
                           "; move what both sides need below both (docs/architecture.md)")


#: files a tool writes and nobody edits by hand (npm's lock file of the tests' Azurite)
GENERATED = {"package-lock.json"}


def test_no_file_is_over_the_line_limit():
    long = sorted((len(text.splitlines()), str(path.relative_to(ROOT))) for path in _files()
                  if path.name not in GENERATED and (text := _text(path)) is not None and len(text.splitlines()) > MAX_FILE_LINES)
    assert not long, f"files over {MAX_FILE_LINES} lines (split them by responsibility): " + ", ".join(
        f"{name} ({n})" for n, name in long)


def test_no_class_is_over_the_line_limit():
    sizes = {}
    for path in _files():
        if path.suffix != ".py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ClassDef):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                sizes[f"{path.relative_to(ROOT)}::{node.name}"] = node.end_lineno - start + 1
    over = {name: n for name, n in sizes.items() if n > MAX_CLASS_LINES}
    assert not over, f"classes over {MAX_CLASS_LINES} lines (give a responsibility its own unit): " + ", ".join(
        f"{name} ({n})" for name, n in sorted(over.items()))


def test_the_architecture_page_shows_the_code_s_imports():
    graph = _import_graph()
    page = graph.PAGE.read_text(encoding="utf-8")
    fresh = graph.render(page, graph.mermaid(graph.package_graph(graph.module_graph())))
    assert page == fresh, "docs/architecture.md shows another import graph than the code's: " \
                          "run python docs/import_graph.py and commit the page"


@pytest.mark.parametrize(("source", "imports"), [
    pytest.param("from . import b", {"pkg.b"}, id="relative"),
    pytest.param("def f():\n    from pkg.b import thing", {"pkg.b"}, id="function-level"),
    pytest.param("from pkg import b", {"pkg.b"}, id="submodule-by-name"),
    pytest.param("from pkg.b import thing", {"pkg.b"}, id="name-of-a-module"),
    pytest.param("import pkg.b", {"pkg.b"}, id="import"),
])
def test_the_graph_reads_every_kind_of_import(tmp_path, source, imports):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(source + "\n")
    (pkg / "b.py").write_text("thing = 1\n")
    assert _import_graph().module_graph(pkg)["pkg.a"] == imports


def test_a_circle_through_a_function_level_import_is_named():
    graph = _import_graph()
    assert graph.find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert graph.find_cycle({"a": {"b"}, "b": set()}) is None
