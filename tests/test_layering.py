"""Layers point one way (../shared/DESIGN.md): the torch-free core `sine` imports nothing
above it, the service never imports torch, the trainer or the index builder's build code,
benchmarks do not import the tests, and the live-model pointer protocol is spelt out in
one module only. Checked on the source (every import, also inside functions) and, for
the service and the gate, on what importing them really loads."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ABOVE_THE_CORE = {"trainer", "service", "index_builder", "deploy", "sine_cli", "harness", "tests", "bench",
                  "torch"}
NOT_IN_THE_SERVICE = {"torch", "trainer", "deploy", "sine_cli", "harness", "tests", "bench",
                      "index_builder.build"}
POINTER_OWNER = ROOT / "sine" / "bundle_store.py"


def python_files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if ".venv" not in p.parts)


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def violations(package: str, forbidden: set[str]) -> list[str]:
    found = []
    for path in python_files(package):
        for module in sorted(imported_modules(path)):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(ROOT)} imports {module}")
    return found


def test_the_core_imports_nothing_above_it():
    assert violations("sine", ABOVE_THE_CORE) == []


def test_the_service_imports_no_torch_trainer_or_index_build_code():
    assert violations("service", NOT_IN_THE_SERVICE) == []


def test_benchmarks_do_not_import_the_tests():
    assert violations("bench", {"tests"}) == []


@pytest.mark.parametrize("module, forbidden", [
    ("service.main", ("torch", "trainer", "index_builder.build", "deploy", "sine_cli")),
    ("sine_cli.app", ("torch", "service", "index_builder", "deploy", "faiss", "onnxruntime")),  # a fast --help
    ("deploy.gate", ("torch", "trainer")),
])
def test_what_importing_really_loads(module, forbidden):
    code = (f"import sys, {module}; bad = [m for m in {forbidden!r} if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_pointer_protocol_is_spelt_out_in_one_module():
    """The pointer file names and the Redis key / channel appear in sine/bundle_store.py only."""
    found = []
    for package in ("sine", "sine_cli", "service", "deploy", "trainer", "index_builder"):
        for path in python_files(package):
            if path == POINTER_OWNER:
                continue
            tree = ast.parse(path.read_text())
            docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                          if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                          and n.body and isinstance(n.body[0], ast.Expr)}
            for node in ast.walk(tree):
                if id(node) in docstrings:
                    continue  # prose may mention the names; code may not spell them
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and (
                        node.value in ("CURRENT", "PREVIOUS") or "model:current" in node.value
                        or "model:reload" in node.value):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert found == []
