"""The README and the user guide (docs/guide/*.md): every Python snippet runs as written
(headless) and prints what it says, and every table of numbers is a copy of a recorded run."""

import contextlib
import io
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs" / "guide").glob("*.md"))]
SNIPPETS = [
    (page.relative_to(ROOT).as_posix(), k, snippet)
    for page in PAGES
    for k, snippet in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S))
]


def test_the_readme_and_the_guide_have_snippets():
    names = {name for name, _, _ in SNIPPETS}
    assert "README.md" in names and len(names) >= 4 and len(SNIPPETS) >= 6


def _needs(snippet):
    """The optional package a snippet needs beyond [test]: the data extra's aeon for the
    shipped data sets (CI's second pass installs it; the first skips the snippet)."""
    return "aeon" if re.search(r"japanese_vowels|airline\(", snippet) else None


@pytest.mark.parametrize(
    "name, index, snippet",
    [pytest.param(*s, marks=pytest.mark.extras) if _needs(s[2]) else s for s in SNIPPETS],
    ids=[f"{name}:{k + 1}" for name, k, _ in SNIPPETS],
)
def test_snippet_runs(name, index, snippet, tmp_path, monkeypatch):
    import importlib.util

    needed = _needs(snippet)
    if needed and importlib.util.find_spec(needed) is None:
        pytest.skip(f"the snippet reads data that ships with {needed}: pip install 'rnnreg[data]'")
    monkeypatch.chdir(tmp_path)  # snippets may write files (a saved model)
    import matplotlib

    matplotlib.use("Agg")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(snippet, f"{name} snippet {index + 1}", "exec"), {"__name__": "readme"})
    printed = out.getvalue()
    # a line the snippet comments with its expected output, e.g. `print(...)  # (4, 15, 32) ...`
    for line in snippet.splitlines():
        if line.startswith("print(") and "#" in line:
            expected = line.split("#", 1)[1].strip()
            if expected.startswith("("):
                assert expected in printed, (expected, printed)


def _readme_tables():
    import importlib.util

    script = ROOT / "benchmarks" / "readme_tables.py"
    if not script.exists():
        pytest.skip("benchmarks/ is not beside the tests")
    spec = importlib.util.spec_from_file_location("readme_tables", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_every_marked_table_matches_the_recorded_run_it_names(page):
    """The tables of numbers are copies of recorded results (benchmarks/readme_tables.py writes
    them): a rerun that changes a record, or a hand edit, fails here until regenerated."""
    module = _readme_tables()
    _, changed = module.regenerate(page.read_text(encoding="utf-8"))
    assert not changed, (
        f"{page.name}: tables differ from their records: {changed}; run python -m benchmarks.readme_tables"
    )


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_no_table_of_figures_is_typed_by_hand(page):
    """A table holding a measured figure (a decimal number) sits between the markers of the
    record it is copied from; tables of options and formulas may stand on their own, and the
    settings table is written from the declaration (tests/test_model_config.py keeps it so)."""
    text = re.sub(
        r"<!-- table: .*?<!-- /table -->|<!-- settings -->.*?<!-- /settings -->",
        "",
        page.read_text(encoding="utf-8"),
        flags=re.S,
    )
    typed = [line for line in text.splitlines() if line.startswith("|") and re.search(r"\d\.\d", line)]
    assert not typed, f"{page.name}: figures outside a recorded table: {typed[:3]}"


def test_the_script_knows_every_page_with_tables():
    module = _readme_tables()
    assert {str(p.relative_to(ROOT)) for p in PAGES} == set(module.PAGES)
    assert sum(p.read_text(encoding="utf-8").count("<!-- table: ") for p in PAGES) >= 14


def test_every_record_is_in_the_results_index():
    """benchmarks/results/README.md lists every record (a file, or a folder of one run's files)."""
    results = ROOT / "benchmarks" / "results"
    if not results.is_dir():
        pytest.skip("benchmarks/ is not beside the tests")
    index = (results / "README.md").read_text(encoding="utf-8")
    missing = [
        p.name
        for p in results.iterdir()
        if p.name != "README.md" and f"`{p.name}" not in index and f"`{p.name}/`" not in index
    ]
    assert not missing, f"not in benchmarks/results/README.md: {missing}"
