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
]
autosummary_generate = True
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False     # members are listed where they are documented
numpydoc_class_members_toctree = False
# What every public name's docstring must hold (summary, Parameters, Returns, a running
# Examples section) is checked by tests/test_docs.py, on the installed package.
templates_path = []
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_title = f"rnnreg {release}"
nitpicky = False
