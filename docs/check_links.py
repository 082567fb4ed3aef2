"""Every internal link and image of the built docs resolves: each relative href and src in the
HTML pages names a file that exists (and, with a #fragment, an id in it).

    python docs/check_links.py docs/_build/html      # after sphinx-build; exit 1 naming each broken one
"""

import html.parser
import pathlib
import sys
import urllib.parse


class _Refs(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for key in ("href", "src"):
            if attrs.get(key):
                self.refs.append(attrs[key])


def check(root):
    root = pathlib.Path(root)
    pages = {path: _parse(path) for path in root.rglob("*.html")}
    broken = []
    for page, parsed in pages.items():
        for ref in parsed.refs:
            url = urllib.parse.urlparse(ref)
            if url.scheme or url.netloc or ref.startswith(("mailto:", "javascript:")):
                continue  # external: not this check's business
            target = (page.parent / url.path).resolve() if url.path else page
            if not target.exists():
                broken.append(f"{page.relative_to(root)}: {ref} (no such file)")
            elif url.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if url.fragment not in ids:
                    broken.append(f"{page.relative_to(root)}: {ref} (no #{url.fragment} there)")
    return len(pages), broken


def _parse(path):
    parser = _Refs()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


if __name__ == "__main__":
    count, broken = check(sys.argv[1] if len(sys.argv) > 1 else "docs/_build/html")
    for line in broken:
        print(line)
    print(f"{count} pages, {len(broken)} broken internal links")
    sys.exit(1 if broken or count == 0 else 0)
