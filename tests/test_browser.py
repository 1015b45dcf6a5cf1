"""The rendered book checked in a real browser (headless Chromium driven by Playwright).

Every chapter page of the built HTML is loaded from a local server; the test fails on a
failed request for the book's own files, an image that did not load, or math that MathJax
(served from the local copy in ``_static/mathjax``) did not typeset. Screenshots of two pages
are saved to ``_build/screenshots`` for review.

Skips cleanly when Chromium, Playwright or the built book (``_build/html``) is absent; CI
installs Chromium and builds the book first, so there it runs.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed"),
    pytest.mark.skipif(not (HTML / "index.html").exists(), reason="the book is not built (_build/html)"),
]


def toc_pages() -> list[str]:
    """The HTML path of every page listed in _toc.yml, in reading order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                files.append(entry["file"])
            for key in ("chapters", "sections", "parts"):
                walk(entry.get(key, []))

    walk(toc.get("chapters", []) + toc.get("parts", []))
    return [f + ".html" for f in files]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # keep the test output quiet
            pass

    handler = functools.partial(QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def check_page(browser, base: str, path: str, screenshot: Path | None = None) -> dict:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    failed: list[str] = []
    page.on("requestfailed", lambda req: failed.append(f"{req.url} ({req.failure})"))
    page.on("response", lambda resp: resp.status >= 400 and failed.append(f"{resp.url} (HTTP {resp.status})"))
    page.goto(f"{base}/{path}", wait_until="load")
    has_math = page.evaluate("document.querySelectorAll('.math').length") > 0
    if has_math:
        page.wait_for_function(
            "window.MathJax && MathJax.startup && MathJax.startup.document "
            "&& document.querySelectorAll('mjx-container').length > 0",
            timeout=30_000,
        )
        page.evaluate("MathJax.startup.promise")
    page.wait_for_load_state("networkidle")
    result = page.evaluate(
        """() => ({
            images: Array.from(document.querySelectorAll('main img')).map(i => ({src: i.src, ok: i.complete && i.naturalWidth > 0})),
            typeset: document.querySelectorAll('mjx-container').length,
            math: document.querySelectorAll('.math').length,
            errors: document.querySelectorAll('mjx-merror').length,
        })"""
    )
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=False)
    page.close()
    own = [f for f in failed if f.startswith(base)]
    return {**result, "failed_own": own, "failed_other": [f for f in failed if not f.startswith(base)]}


@pytest.mark.parametrize("path", toc_pages())
def test_page_renders(browser, server, path):
    shots = {toc_pages()[0]: "index.png", "book/03_kl_and_fisher.html": "chapter3.png"}
    shot = ROOT / "_build" / "screenshots" / shots[path] if path in shots else None
    result = check_page(browser, server, path, shot)
    assert result["failed_own"] == [], f"requests for the book's own files failed: {result['failed_own']}"
    assert all(img["ok"] for img in result["images"]), f"images that did not load: {result['images']}"
    if result["math"]:
        assert result["typeset"] > 0 and result["errors"] == 0, result
    if path == "book/03_kl_and_fisher.html":  # a page known to hold math and a figure
        assert result["typeset"] > 0 and result["images"], result
