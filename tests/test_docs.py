"""The API reference: every public name is documented — numpydoc sections, shapes, an example —
and every example runs, here, against the installed package (docs/ holds the Sphinx site that
CI builds with warnings as errors)."""

import doctest
import glob
import importlib.util
import inspect
import os
import re

import matplotlib
import pytest

import rnnreg

matplotlib.use("Agg")
DOCS = os.path.join(os.path.dirname(__file__), os.pardir, "docs")
NEEDS_TORCH = {"to_torch", "from_torch"}
CONSTANTS = {"GATE_ORDER", "LSTM_LAYER_NORM_PARAMS", "GRU_GATE_ORDER", "GRU_LAYER_NORM_PARAMS"}
RETURNS_NOTHING = {"set_backend", "use_backend", "set_num_threads"}  # setters, a context manager
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

DOCUMENTED = sorted(set(rnnreg.__all__) - CONSTANTS)


def _sections(obj):
    doc = inspect.getdoc(obj) or ""
    lines = doc.splitlines()
    return doc, {lines[i].strip() for i in range(len(lines) - 1) if lines[i + 1].strip().startswith("---")}


@pytest.mark.parametrize("name", DOCUMENTED)
def test_every_public_name_has_a_numpydoc_docstring_with_an_example(name):
    obj = getattr(rnnreg, name)
    doc, sections = _sections(obj)
    assert doc.splitlines()[0].strip(), f"{name}: no one-line summary"
    assert "Examples" in sections and ">>> " in doc, f"{name}: no Examples section"
    takes = (
        [
            p
            for p in inspect.signature(obj).parameters.values()
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]
        if callable(obj)
        else []
    )
    is_tuple = isinstance(obj, type) and issubclass(obj, tuple)
    if takes and not is_tuple:
        assert "Parameters" in sections, f"{name}: parameters not documented"
        documented = doc.split("Parameters")[1]
        for p in takes:
            assert p.name in documented, f"{name}: parameter {p.name!r} not documented"
    if inspect.isfunction(obj) and name not in RETURNS_NOTHING:
        assert "Returns" in sections, f"{name}: no Returns section"


@pytest.mark.parametrize(
    "name",
    [pytest.param(name, marks=pytest.mark.extras) if name in NEEDS_TORCH else name for name in DOCUMENTED],
)
def test_every_example_runs(name):
    if name in NEEDS_TORCH and importlib.util.find_spec("torch") is None:
        pytest.skip("the example needs torch (the interop extra)")
    obj = getattr(rnnreg, name)
    tests = [t for t in doctest.DocTestFinder(recurse=False).find(obj, name, globs={}) if t.examples]
    assert tests, f"{name}: no example found"
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in tests:
        runner.run(test)
    assert runner.failures == 0, f"{name}: {runner.failures} example(s) failed (output above)"


def test_the_reference_lists_every_public_name_and_its_examples_run():
    api = os.path.join(DOCS, "api.rst")
    if not os.path.exists(api):
        pytest.skip("docs/ is not beside the tests")
    with open(api) as f:
        text = f.read()
    missing = [
        name for name in rnnreg.__all__ if f"   {name}\n" not in text and f".. data:: {name}\n" not in text
    ]
    assert not missing, f"not in docs/api.rst: {missing}"
    result = doctest.testfile(api, module_relative=False, optionflags=FLAGS, verbose=False)
    assert result.attempted >= 2 and result.failed == 0


@pytest.mark.extras
def test_the_browser_check_passes_a_page_that_renders_and_names_what_does_not(tmp_path):
    """docs/check_browser.py (run on the built site in CI) in headless Chromium: a page whose
    image decodes passes; a missing image, a broken one and a script error are each reported."""
    import shutil

    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no chromium on PATH (CI installs Debian's)")
    spec = importlib.util.spec_from_file_location(
        "check_browser", os.path.join(os.path.dirname(__file__), "..", "docs", "check_browser.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import matplotlib.pyplot as plt

    good = tmp_path / "good"
    good.mkdir()
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [1, 0])
    fig.savefig(good / "plot.png")
    plt.close(fig)
    page = (
        "<html><head><title>{t}</title></head><body><p>Enough text to count as a page.</p>{b}</body></html>"
    )
    (good / "index.html").write_text(page.format(t="good", b='<img src="plot.png">'))
    pages, images, problems = module.check(good, chromium)
    assert (len(pages), images, problems) == (1, 1, [])

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "corrupt.png").write_bytes(b"not a png")
    (bad / "index.html").write_text(
        page.format(
            t="bad", b='<img src="missing.png"><img src="corrupt.png"><script>noSuchFunction()</script>'
        )
    )
    (bad / "empty.html").write_text("<html><body></body></html>")
    _, _, problems = module.check(bad, chromium)
    text = "\n".join(problems)
    assert "image does not render: missing.png" in text
    assert "image does not render: corrupt.png" in text
    assert "script error" in text and "noSuchFunction" in text
    assert "empty.html: renders empty" in text


def _imported_names(text):
    """``(module, name)`` of every ``from rnnreg[.x] import a, b`` in a page's code."""
    found = []
    for module, names in re.findall(r"^\s*from (rnnreg(?:\.\w+)*) import \(?([\w ,\n]+?)\)?\s*$", text, re.M):
        found += [(module, name) for name in re.split(r"[,\s]+", names) if name and name != "as"]
    return found


def test_every_name_the_guides_import_is_in_the_reference():
    """A name a guide, the README or the recipes import is documented in docs/api.rst (by the
    name it is imported as, under any module that gives the same object)."""
    api = os.path.join(DOCS, "api.rst")
    if not os.path.exists(api):
        pytest.skip("docs/ is not beside the tests")
    text = open(api).read()
    documented = set(re.findall(r"^   ([A-Za-z_]\w*)$", text, re.M)) | set(
        re.findall(r"\.\. data:: (\w+)", text)
    )
    pages = glob.glob(os.path.join(DOCS, "guide", "*.md")) + [
        os.path.join(DOCS, "recipes.rst"),
        os.path.join(DOCS, "..", "README.md"),
    ]
    missing = sorted(
        {
            f"{module}.{name} ({os.path.basename(page)})"
            for page in pages
            for module, name in _imported_names(open(page).read())
            if name not in documented
        }  # fmt: skip
    )
    assert not missing, f"imported in the guides but not in docs/api.rst: {missing}"


def test_the_guides_table_of_command_line_defaults_is_derived():
    """docs/guide/getting-started.md's table of where the command line's defaults differ from
    Python's is what docs/settings_table.py derives from the declarations and the parsers."""
    path = os.path.join(DOCS, "settings_table.py")
    if not os.path.exists(path):
        pytest.skip("docs/ is not beside the tests")
    spec = importlib.util.spec_from_file_location("settings_table", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = open(os.path.join(DOCS, "guide", "getting-started.md")).read()
    block = text.split("<!-- defaults -->\n", 1)[1].split("\n<!-- /defaults -->", 1)[0]
    assert block == module.defaults_table(), "the defaults table is stale: run python docs/settings_table.py"
    assert "| `dtype` | `float64` | `float32` |" in block


def test_the_site_starts_with_the_user_and_keeps_internals_for_contributors():
    """The landing page's sections in Keras's and scikit-learn's order, the notebook among the
    examples (the tutorial page reads it when the site is built), internals in the contributor
    section."""
    index = os.path.join(DOCS, "index.rst")
    if not os.path.exists(index):
        pytest.skip("docs/ is not beside the tests")
    text = open(index).read()
    captions = re.findall(r":caption: (.+)", text)
    assert captions == ["Getting started", "User guide", "Examples", "Reference", "Contributing"]
    assert "rnnreg.model_config" not in text.split(".. toctree::")[0]  # no internals up front
    tutorial = open(os.path.join(DOCS, "tutorial.md")).read()
    notebook = re.search(r"<!-- notebook: (\S+) -->", tutorial).group(1)
    assert os.path.exists(os.path.join(DOCS, "..", notebook))
