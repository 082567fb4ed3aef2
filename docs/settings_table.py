"""Write the table of every model setting into the regularizers guide, from the declaration
(rnnreg.model_config.ModelConfig): ``python docs/settings_table.py``. tests/test_model_config.py
fails while the guide's table differs from what this writes."""

import pathlib
import re

from rnnreg.model_config import markdown_table

GUIDE = pathlib.Path(__file__).resolve().parent / "guide" / "regularizers.md"


def main():
    text = GUIDE.read_text(encoding="utf-8")
    new = re.sub(
        r"(<!-- settings -->\n).*?(\n<!-- /settings -->)",
        lambda m: m.group(1) + markdown_table() + m.group(2),
        text,
        count=1,
        flags=re.S,
    )
    GUIDE.write_text(new, encoding="utf-8")
    print(f"{GUIDE}: {'rewritten' if new != text else 'unchanged'}")


if __name__ == "__main__":
    main()
