"""The build: which modules setup.py compiles, and that a compiled run really uses them."""

from __future__ import annotations

import ast
import importlib
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def compiled_sources() -> list[str]:
    """The paths setup.py hands to mypycify, read without running setup.py."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "COMPILED":
            value = eval(compile(ast.Expression(node.value), "setup.py", "eval"), {})
            assert isinstance(value, list)
            return [str(path) for path in value]
    raise AssertionError("setup.py has no COMPILED list")


def test_compiled_modules_exist_and_import_nothing_of_the_io_layers() -> None:
    sources = compiled_sources()
    assert "probe_exporter/binrpc/codec.py" in sources
    for source in sources:
        path = ROOT / source
        assert path.is_file(), source
        text = path.read_text()
        # pure modules: the I/O layers above them are interpreted and may import them only
        for layer in ("aiohttp", "asyncio", ".client", ".probe", ".service", ".pool"):
            assert f"import {layer}" not in text, (source, layer)
            assert f"from {layer} " not in text, (source, layer)


def test_the_run_uses_the_form_it_tests() -> None:
    """scripts/test.sh --compiled sets PROBE_EXPORTER_MYPYC=1: every listed module must then
    be an extension module; otherwise (the development venv) the pure-Python source. Else one
    run would test the other's form, and one form would go untested."""
    suffix = ".so" if os.environ.get("PROBE_EXPORTER_MYPYC") == "1" else ".py"
    for source in compiled_sources():
        name = source.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        module = importlib.import_module(name)
        assert str(module.__file__).endswith(suffix), module.__file__
