"""Sphinx configuration of rnnreg's reference: ``sphinx-build -W -b html docs docs/_build/html``
(CI builds it with warnings as errors; every example in it runs in ``tests/test_docs.py``)."""

import re

import rnnreg

project = "rnnreg"
author = "rnnreg developers"
copyright = "2026, rnnreg developers"
release = version = rnnreg.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",  # the user guide is Markdown, so its pages read on GitHub too and share
]  # benchmarks/readme_tables.py's recorded tables with the README
myst_heading_anchors = 3
autosummary_generate = False  # entries are documented on the reference page (see below)
autodoc_default_options: dict = {}  # members are asked for where wanted (classes on the reference page)
# Signatures without annotations: the numpydoc sections give every type in words, and the
# annotations (NumPy's private typing aliases) would be unreadable there and unresolvable offline.
autodoc_typehints = "none"
numpydoc_show_class_members = False  # members are listed where they are documented
numpydoc_class_members_toctree = False
# What every public name's docstring must hold (summary, Parameters, Returns, a running
# Examples section) is checked by tests/test_docs.py, on the installed package.
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_theme_options = {"page_width": "1280px", "sidebar_width": "230px"}
html_static_path = ["_static"]
html_css_files = ["tables.css"]
html_title = f"rnnreg {release}"
nitpicky = True  # every cross-reference must resolve (sphinx-build -W makes it an error)


# ----------------------------------------------------------------------------- built, not written
# The build writes only into its output folder: the command-line reference is a directive that
# runs rnnreg's own parser (docs/cli.rst holds only the directive), and the reference's entries
# are documented on its own page, below each autosummary table (added to the page's text as
# Sphinx reads it), instead of autosummary writing a stub file per name into docs/generated/.
from docutils import nodes  # noqa: E402
from docutils.parsers.rst import Directive  # noqa: E402


class CommandLineHelp(Directive):
    """``.. rnnreg-cli::``: what ``rnnreg --help`` and every ``rnnreg COMMAND --help`` print,
    under a section per command, from the parser itself."""

    def run(self):
        import os

        os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal's width: fix it
        from rnnreg.cli import build_parser

        parser = build_parser()
        sub = next(action for action in parser._actions if action.dest == "command")
        out = [nodes.literal_block(text=parser.format_help())]
        for name, command in sub.choices.items():
            section = nodes.section(ids=[f"rnnreg-{name}"])
            section += nodes.title(text=f"rnnreg {name}")
            section += nodes.literal_block(text=command.format_help())
            out.append(section)
        return out


def _entries(module, names):
    """autodoc directives for ``names`` of ``module``: a class with its public methods and
    attributes (as the class template of autosummary gave), a function, or a constant."""
    import importlib
    import inspect

    lines = []
    for name in names:
        full = f"{module}.{name}"
        parts = full.split(".")
        for split in range(len(parts) - 1, 0, -1):  # the longest module prefix, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:split]))
                break
            except ImportError:
                continue
        for part in parts[split:]:
            obj = getattr(obj, part)
        if inspect.isclass(obj):
            lines += [f".. autoclass:: {full}", "   :members:", ""]
        elif callable(obj):
            lines += [f".. autofunction:: {full}", ""]
        else:
            lines += [f".. autodata:: {full}", ""]
    return lines


def _document_on_the_page(app, docname, source):
    """The reference page's autosummary tables (without stub files) and each entry's
    documentation after its table."""
    if docname != "api":
        return
    out, module, block = [], "rnnreg", None
    for line in source[0].splitlines() + [""]:
        stripped = line.strip()
        if stripped.startswith(".. currentmodule::"):
            module = stripped.split("::", 1)[1].strip()
        if stripped == ":toctree: generated":
            continue
        if stripped.startswith(".. autosummary::"):
            block = []
        elif block is not None and line.startswith("   ") and not stripped.startswith(":"):
            block.append(stripped)
        elif block is not None and stripped == "" and not block:
            pass  # the blank line between the options and the names
        elif block is not None and not line.startswith("   "):
            out += ["", *_entries(module, block)]
            block = None
        out.append(line)
    source[0] = "\n".join(out)


_NOTEBOOK = re.compile(r"<!-- notebook: (\S+) -->")


def _notebook_as_page(app, docname, source):
    """A page holding ``<!-- notebook: PATH -->`` gets the notebook's markdown export there (its
    ``In [...]:`` code cells as Python blocks, its headings one level down), read as the page is
    read: the tutorial is the notebook itself, never a copy."""
    match = _NOTEBOOK.search(source[0])
    if not match:
        return
    import os

    path = os.path.join(app.confdir, "..", match.group(1))
    out, code = [], None
    for line in open(path, encoding="utf-8").read().splitlines():
        if line.startswith("In [") and line.rstrip().endswith("]:"):
            if code is not None:
                out += ["```python", *code, "```", ""]
            code = []
        elif code is not None and line.startswith(("## ", "### ")):  # as examples/notebook_cells.py
            out += ["```python", *code, "```", ""]
            code = None
            out.append("#" + line)
        elif code is not None:
            code.append(line)
        else:
            out.append("#" + line if line.startswith("#") and line.lstrip("#").startswith(" ") else line)
    if code is not None:
        out += ["```python", *code, "```"]
    source[0] = source[0][: match.start()] + "\n".join(out) + source[0][match.end() :]


def setup(app):
    app.add_directive("rnnreg-cli", CommandLineHelp)
    app.connect("source-read", _document_on_the_page)
    app.connect("source-read", _notebook_as_page)
