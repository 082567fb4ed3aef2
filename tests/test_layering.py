"""The package's import rules: no library module imports the command line."""
import ast
import pathlib

import rnnreg

PACKAGE = pathlib.Path(rnnreg.__file__).parent


def _imports(path):
    """The rnnreg modules a source file imports (relative or absolute), by their last name."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level > 0 or module.startswith("rnnreg"):
                base = module.split(".")[-1] if module else ""
                names.add(base)
                names.update(alias.name for alias in node.names)   # from . import cli
        elif isinstance(node, ast.Import):
            names.update(alias.name.split(".")[-1] for alias in node.names
                         if alias.name.startswith("rnnreg"))
    return names


def test_no_module_but_the_entry_points_imports_the_command_line():
    sources = sorted(PACKAGE.glob("*.py"))
    assert len(sources) > 10
    importers = [p.name for p in sources if "cli" in _imports(p)]
    assert importers == ["__main__.py"], importers
