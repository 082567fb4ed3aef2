"""Every Python snippet in the README runs as written (headless), and prints what it says."""
import contextlib
import io
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_the_readme_has_snippets():
    assert len(SNIPPETS) >= 2


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)    # snippets may write files (a saved model)
    import matplotlib
    matplotlib.use("Agg")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(SNIPPETS[index], f"README snippet {index + 1}", "exec"), {"__name__": "readme"})
    printed = out.getvalue()
    # a line the snippet comments with its expected output, e.g. `print(...)  # (4, 15, 32) ...`
    for line in SNIPPETS[index].splitlines():
        if line.startswith("print(") and "#" in line:
            expected = line.split("#", 1)[1].strip()
            if expected.startswith("("):
                assert expected in printed, (expected, printed)


def test_every_marked_table_matches_the_recorded_run_it_names():
    """The README's tables of numbers are copies of recorded results (benchmarks/readme_tables.py
    writes them): a rerun that changes a record, or a hand edit, fails here until regenerated."""
    import importlib.util
    script = README.parent / "benchmarks" / "readme_tables.py"
    if not script.exists():
        pytest.skip("benchmarks/ is not beside the tests")
    spec = importlib.util.spec_from_file_location("readme_tables", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = README.read_text(encoding="utf-8")
    assert text.count("<!-- table: ") >= 5
    _, changed = module.regenerate(text)
    assert not changed, f"README tables differ from their records: {changed}; run python " \
        "benchmarks/readme_tables.py"
