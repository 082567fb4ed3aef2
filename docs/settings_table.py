"""Write the guides' tables that come from declarations: every model setting into the
regularizers guide (from rnnreg.model_config.ModelConfig), and where the command line's defaults
differ from Python's into the getting-started guide (from TrainConfig, ModelConfig and the
commands' own parsers): ``python docs/settings_table.py``. The tests fail while a guide's table
differs from what this writes (tests/test_model_config.py, tests/test_docs.py)."""

import dataclasses
import pathlib
import re

from rnnreg.model_config import markdown_table

GUIDES = pathlib.Path(__file__).resolve().parent / "guide"
TABLES = {  # marker -> (guide, the function that writes its table)
    "settings": ("regularizers.md", markdown_table),
    "defaults": ("getting-started.md", lambda: defaults_table()),
}
COMMANDS = ("train", "compare", "sweep")


def _shown(value):
    return "constant" if value is None else f"`{value}`"


def defaults_table():
    """Where ``rnnreg train``, ``compare`` and ``sweep`` start from other defaults than
    ``RegularizedLSTM`` / ``TrainConfig`` / ``rnnreg.sweep`` in Python: one row per setting that
    differs for any command, derived from the declarations and the parsers themselves."""
    from rnnreg.cli import build_parser
    from rnnreg.model_config import ModelConfig
    from rnnreg.runs import build_run
    from rnnreg.training import TrainConfig

    parser = build_parser()
    runs = {}
    for command in COMMANDS:
        settings = vars(parser.parse_args([command]))
        model, config = build_run(settings, 81)
        runs[command] = (settings, model.model_config, config)
    python_train = TrainConfig()
    rows = []
    hidden = {c: runs[c][0]["hidden"] for c in COMMANDS}
    rows.append(("hidden_size", "required", hidden))
    python_model = ModelConfig(vocab_size=81, hidden_size=hidden["train"])
    for field in dataclasses.fields(ModelConfig):
        cli = {c: getattr(runs[c][1], field.name) for c in COMMANDS}
        if field.name != "hidden_size" and any(v != getattr(python_model, field.name) for v in cli.values()):
            rows.append(
                (
                    field.name,
                    _shown(getattr(python_model, field.name)),
                    {c: _shown(v) for c, v in cli.items()},
                )
            )
    for field in dataclasses.fields(TrainConfig):
        cli = {c: getattr(runs[c][2], field.name) for c in COMMANDS}
        if any(v != getattr(python_train, field.name) for v in cli.values()):
            rows.append(
                (
                    field.name,
                    _shown(getattr(python_train, field.name)),
                    {c: _shown(v) for c, v in cli.items()},
                )
            )
    jobs = {c: runs[c][0].get("jobs", "—") for c in COMMANDS}
    rows.append(
        (
            "jobs",
            "one per core (`rnnreg.sweep`)",
            {c: "one per core" if v is None else v for c, v in jobs.items()},
        )
    )
    lines = [
        "| setting | Python | " + " | ".join(f"`rnnreg {c}`" for c in COMMANDS) + " |",
        "|---|---|" + "---|" * len(COMMANDS),
    ]
    for name, python, cli in rows:
        lines.append(f"| `{name}` | {python} | " + " | ".join(str(cli[c]) for c in COMMANDS) + " |")
    return "\n".join(lines)


def main():
    for marker, (name, table) in TABLES.items():
        guide = GUIDES / name
        text, written = guide.read_text(encoding="utf-8"), table()
        new = re.sub(
            rf"(<!-- {marker} -->\n).*?(\n<!-- /{marker} -->)",
            lambda m, written=written: m.group(1) + written + m.group(2),
            text,
            count=1,
            flags=re.S,
        )
        guide.write_text(new, encoding="utf-8")
        print(f"{guide}: {'rewritten' if new != text else 'unchanged'}")


if __name__ == "__main__":
    main()
