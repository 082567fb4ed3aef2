"""Sphinx configuration of rnnreg's reference: ``sphinx-build -W -b html docs docs/_build/html``
(CI builds it with warnings as errors; every example in it runs in ``tests/test_docs.py``)."""

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
autosummary_generate = True
autodoc_default_options = {"members": False}
# Signatures without annotations: the numpydoc sections give every type in words, and the
# annotations (NumPy's private typing aliases) would be unreadable there and unresolvable offline.
autodoc_typehints = "none"
numpydoc_show_class_members = False  # members are listed where they are documented
numpydoc_class_members_toctree = False
# What every public name's docstring must hold (summary, Parameters, Returns, a running
# Examples section) is checked by tests/test_docs.py, on the installed package.
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
templates_path = ["_templates"]  # autosummary/class.rst: every method and attribute in full
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_theme_options = {"page_width": "1280px", "sidebar_width": "230px"}
html_static_path = ["_static"]
html_css_files = ["tables.css"]
html_title = f"rnnreg {release}"
nitpicky = True  # every cross-reference must resolve (sphinx-build -W makes it an error)


# ----------------------------------------------------------------------------- the CLI reference
# docs/cli.rst is generated from rnnreg's own argparse parser at every build (never copied by
# hand): every command, every flag and its default, as `rnnreg COMMAND --help` prints them.
def _write_cli_reference(app):
    import os

    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal's width: fix it
    from rnnreg.cli import build_parser

    parser = build_parser()
    sub = next(action for action in parser._actions if action.dest == "command")
    lines = [
        "Command-line reference",
        "======================",
        "",
        "Generated from ``rnnreg``'s argparse parser when these pages are built: what "
        "``rnnreg --help`` and ``rnnreg COMMAND --help`` print.",
        "",
        ".. code-block:: text",
        "",
    ]
    lines += ["   " + line for line in parser.format_help().splitlines()] + [""]
    for name, command in sub.choices.items():
        lines += [f"rnnreg {name}", "-" * (len(name) + 7), "", ".. code-block:: text", ""]
        lines += ["   " + line if line else "" for line in command.format_help().splitlines()]
        lines.append("")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cli.rst")
    text = "\n".join(lines) + "\n"
    if not os.path.exists(path) or open(path).read() != text:
        with open(path, "w") as f:
            f.write(text)


def setup(app):
    app.connect("builder-inited", _write_cli_reference)
