"""The rendered book in a real browser: every page of the full and the student edition opened in
headless Chromium (Debian's, driven by Playwright), failing on a JavaScript error, a missing image
or other asset, a broken internal link or anchor, or a formula MathJax did not render. Writes one
screenshot per page under _build/screenshots/ for review.

Run after both builds (make test does): pytest tests/browser. Not part of the unit tests.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))  # the student edition is course tooling, not part of prm_lib
from student_edition import exercise_labels  # noqa: E402

EDITIONS = {
    "full": Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html")),
    "student": Path(os.environ.get("STUDENT_HTML", ROOT / "_build" / "student_src" / "_build" / "html")),
}
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
# The flags this machine needs (no sandbox as root; no background connections on a closed network).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def toc_documents() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    docs = [toc["root"]]
    for part in toc["parts"]:
        docs += [c["file"] for c in part["chapters"]]
    return docs


DOCUMENTS = toc_documents()
REPOSITORY = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].rstrip("/")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's chromium (apt-get install chromium) or set CHROMIUM")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # one line per request would bury the test's report
        pass


@functools.lru_cache(maxsize=None)
def server(edition: str) -> str:
    """Serve one edition's HTML on localhost (for the life of the test session); its base URL."""
    root = EDITIONS[edition]
    if not (root / "index.html").exists():
        pytest.fail(f"{root} has no built book: run make book-check and make student-book first")
    handler = functools.partial(QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_address[1]}/"


def ids_in(html_file: Path) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', html_file.read_text(encoding="utf-8")))


def check_page(browser, edition: str, doc: str) -> dict:
    base = server(edition)
    url = urljoin(base, doc + ".html")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda err: problems.append(f"JavaScript error: {err}"))
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text} ({msg.location.get('url')})")
            if msg.type == "error" and not msg.location.get("url", "").endswith("/favicon.ico") else None)
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url} ({req.failure})")
            if req.url.startswith(base) else None)
    page.on("response", lambda res: problems.append(f"HTTP {res.status}: {res.url}")
            if res.url.startswith(base) and res.status >= 400 else None)
    response = page.goto(url, wait_until="load")
    assert response is not None and response.ok, f"{url}: {response and response.status}"
    # MathJax typesets after load; wait for it where the page has math
    has_math = page.evaluate("document.querySelectorAll('.math').length") > 0
    if has_math:
        assert page.evaluate("typeof MathJax !== 'undefined' && !!MathJax.startup"), f"{doc}: math but no MathJax"
        page.evaluate("MathJax.startup.promise")  # resolves when the first typesetting pass is done
    report = page.evaluate("""() => ({
        images: [...document.images].map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0})),
        links: [...document.querySelectorAll('a[href]')].map(a => a.href),
        unrendered: [...document.querySelectorAll('.math')].filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 80)),
        math_errors: [...document.querySelectorAll('mjx-merror, .MathJax_Error')].map(e => e.textContent.slice(0, 80)),
        exercises: document.querySelectorAll('.exercise').length,
        solutions: document.querySelectorAll('.solution').length,
        stubs: [...document.querySelectorAll('.cell')].filter(c => c.textContent.includes('raise NotImplementedError')).length,
        colab: [...document.querySelectorAll('a[href]')].map(a => a.href).filter(h => h.startsWith('https://colab.research.google.com/')),
    })""")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{edition}-{Path(doc).name}.png"))
    page.close()

    problems += [f"image did not load: {i['src']}" for i in report["images"] if not i["ok"]]
    problems += [f"unrendered math: {t!r}" for t in report["unrendered"]]
    problems += [f"MathJax error: {t!r}" for t in report["math_errors"]]
    root = EDITIONS[edition]
    for link in report["links"]:
        if not link.startswith(base):
            continue
        parsed = urlparse(link)
        target = root / unquote(parsed.path[len(urlparse(base).path):] or "index.html")
        if target.is_dir():
            target = target / "index.html"
        if not target.exists():
            problems.append(f"broken link: {link}")
        elif parsed.fragment and target.suffix == ".html" and unquote(parsed.fragment) not in ids_in(target):
            problems.append(f"broken anchor: {link}")
    assert not problems, f"{edition} edition, {doc}:\n  " + "\n  ".join(problems[:20])
    return report


def exercises_in_source(doc: str) -> tuple[int, int] | None:
    """(exercises, code exercises) of a chapter's notebook; None for a page that is not a notebook."""
    path = ROOT / f"{doc}.ipynb"
    if not path.exists():
        return None
    nb = nbformat.read(path, as_version=4)
    return len(exercise_labels(nb)), sum("exercise-stub" in c.metadata.get("tags", []) for c in nb.cells)


@pytest.mark.parametrize("edition", list(EDITIONS))
@pytest.mark.parametrize("doc", DOCUMENTS)
def test_page(browser, edition, doc):
    report = check_page(browser, edition, doc)
    counts = exercises_in_source(doc)
    if counts is None:
        return
    exercises, code_exercises = counts
    assert report["exercises"] == exercises, f"{doc}: {report['exercises']} exercises rendered, {exercises} in the source"
    if edition == "full":
        assert report["solutions"] == exercises, f"{doc}: {report['solutions']} solutions rendered for {exercises} exercises"
        assert report["stubs"] == 0, f"{doc}: exercise stubs are for the student edition"
        # the Colab button, built from _config.yml's repository URL
        expected = f"https://colab.research.google.com/github/{REPOSITORY.split('github.com/')[1]}/blob/main/{doc}.ipynb"
        assert expected in report["colab"], f"{doc}: no Open-in-Colab link to {expected}; found {report['colab']}"
    else:
        assert report["solutions"] == 0, f"{doc}: the student edition shows {report['solutions']} solutions"
        assert report["stubs"] == code_exercises, f"{doc}: {report['stubs']} stubs shown, {code_exercises} code exercises"
        assert not report["colab"], f"{doc}: the student edition must not link to the full notebooks on Colab"
