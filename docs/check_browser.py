"""Every page of the built docs renders in a real browser: headless Chromium (through Playwright)
opens each HTML page from disk and fails on a script error, an error in the console that is not
about a resource from the network, a file of the site that does not load, an image that does not
decode, or a page without a title and text.

    python docs/check_browser.py docs/_build/html [--chromium /usr/bin/chromium]

Playwright drives the Chromium given by ``--chromium`` (default: the ``chromium`` on PATH, as
Debian's package installs it): its own browser download needs a host this project cannot reach.
Resources from the network (MathJax's CDN) are not loaded here and not checked; check_links.py
checks the site's own links and images by name, this checks they render.
"""

import argparse
import pathlib
import shutil
import sys

# Whether every image has loaded and decoded, the title, and how much text the page shows.
_PAGE_STATE = """() => ({
    broken: Array.from(document.images)
        .filter(img => !img.complete || img.naturalWidth === 0)
        .map(img => img.getAttribute('src')),
    images: document.images.length,
    title: document.title,
    text: document.body ? document.body.innerText.trim().length : 0,
})"""


def check(root, chromium):
    from playwright.sync_api import sync_playwright

    root = pathlib.Path(root).resolve()
    pages = sorted(root.rglob("*.html"))
    problems, images = [], 0
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context()
        # Nothing leaves the machine: requests to the network are refused before they go out.
        context.route("http*://**", lambda route: route.abort())
        for path in pages:
            name = str(path.relative_to(root))
            page = context.new_page()
            errors = []
            page.on("pageerror", lambda exc, errors=errors: errors.append(f"script error: {exc}"))
            page.on(
                "console",
                lambda msg, errors=errors: (
                    errors.append(f"console: {msg.text}")
                    if msg.type == "error" and not _from_network(msg)
                    else None
                ),
            )
            page.on(
                "requestfailed",
                lambda req, errors=errors: (
                    errors.append(f"did not load: {req.url}") if req.url.startswith("file:") else None
                ),
            )
            page.goto(path.as_uri(), wait_until="load")
            state = page.evaluate(_PAGE_STATE)
            images += state["images"]
            problems += [f"{name}: {e}" for e in errors]
            problems += [f"{name}: image does not render: {src}" for src in state["broken"]]
            if not state["title"] or state["text"] < 20:
                problems.append(f"{name}: renders empty (title {state['title']!r})")
            page.close()
        browser.close()
    return pages, images, problems


def _from_network(msg):
    """A console error about a resource refused above (the CDN), not about the page itself."""
    url = (msg.location or {}).get("url", "")
    return url.startswith("http") or "net::ERR_FAILED" in msg.text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="the built site, e.g. docs/_build/html")
    parser.add_argument(
        "--chromium",
        default=shutil.which("chromium"),
        help="the Chromium executable (default: chromium on PATH)",
    )
    args = parser.parse_args(argv)
    if not args.chromium:
        print("no Chromium found: install Debian's chromium package or pass --chromium", file=sys.stderr)
        return 2
    pages, images, problems = check(args.root, args.chromium)
    for problem in problems:
        print(problem)
    print(f"{len(pages)} pages and {images} images rendered in Chromium, {len(problems)} problems")
    return 1 if problems or not pages else 0


if __name__ == "__main__":
    sys.exit(main())
