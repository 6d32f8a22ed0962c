"""The built book in a real browser: every page loads in headless Chromium from a localhost server, with no missing
image and no broken internal link; a screenshot of the summary page is kept as a test artifact."""

import functools
import http.server
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urljoin, urldefrag, urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=10000"]  # let scripts run before the DOM is read
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs it)")]


@pytest.fixture(scope="module")
def server(smoke_book):
    book, _ = smoke_book
    html = book / "_build" / "html"
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", html
    httpd.shutdown()


def _chromium(tmp_path, *args, timeout=90):
    profile = tmp_path / "chromium-profile"
    out = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                         timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"chromium exited {out.returncode}: {out.stderr[-1500:]}")
    return out.stdout


def _status(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def test_every_page_loads_with_its_images_and_links(server, tmp_path):
    base, html = server
    pages = sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html") if "_static" not in p.parts)
    assert "chapters/07_summary.html" in pages and "methods.html" in pages
    problems = []
    for page in pages:
        url = urljoin(base, page)
        dom = _chromium(tmp_path, "--dump-dom", url)
        assert "<body" in dom, f"{page}: chromium rendered nothing"
        for src in re.findall(r'<img[^>]+src="([^"]+)"', dom):
            target = urljoin(url, src)
            if urlparse(target).netloc == urlparse(base).netloc and _status(target) != 200:
                problems.append(f"{page}: missing image {src}")
        for href in re.findall(r'<a[^>]+href="([^"#][^"]*)"', dom):
            target = urldefrag(urljoin(url, href))[0]
            if urlparse(target).netloc == urlparse(base).netloc and _status(target) != 200:
                problems.append(f"{page}: broken link {href}")
    assert not problems, "\n".join(problems)


def test_summary_page_shows_tables_and_a_screenshot_is_kept(server, tmp_path):
    base, _ = server
    url = urljoin(base, "chapters/07_summary.html")
    dom = _chromium(tmp_path, "--dump-dom", url)
    assert dom.count("<table") >= 3  # Zhu Table 1, MedVLM-R1 Table 1, the scorecard (and reproducibility)
    assert "paper (reference)" in dom and "verdict" in dom
    chapter = _chromium(tmp_path, "--dump-dom", urljoin(base, "chapters/06_ood_generalization.html"))
    assert re.search(r'<img[^>]+src="[^"]+\.png"', chapter), "the OOD chapter has no figure"
    transfer = _chromium(tmp_path, "--dump-dom", urljoin(base, "chapters/09_transfer.html"))
    assert re.search(r'<img[^>]+src="[^"]+\.png"', transfer), "the Transfer chapter has no figure"
    assert transfer.count("<table") >= 3 and "synthetic panel" in transfer
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    shot = artifacts / "summary.png"
    shot.unlink(missing_ok=True)
    _chromium(tmp_path, "--window-size=1300,3000", f"--screenshot={shot}", url)
    assert shot.exists() and shot.stat().st_size > 20_000


def test_math_renders_offline(server, tmp_path):
    base, html = server
    if not (html / "_static" / "mathjax" / "tex-chtml.js").exists():
        pytest.skip("MathJax was not fetched (make setup fetches it from the npm registry)")
    page = (html / "methods.html").read_text()
    assert "cdn.jsdelivr.net" not in page  # the local copy, not a CDN
    dom = _chromium(tmp_path, "--dump-dom", urljoin(base, "methods.html"))
    assert "mjx-container" in dom  # MathJax ran and typeset the formulas


#: What a report must never show: library warnings, progress bars, logger lines and paths of the machine that built it.
NOISE = {
    "a Python warning": re.compile(r"\b[A-Z][A-Za-z]*Warning\b|\bwarnings\.warn\("),
    "a progress bar": re.compile(r"\d+%\|[^|\n]*\||\bit/s\]|\bexamples/s\]"),
    "a logger line": re.compile(r"\[(?:WARNING|INFO|ERROR)\]"),
    "a build-machine path": re.compile("|".join(re.escape(s) for s in (str(ROOT), "site-packages", "/tmp/pytest-of"))),
}


def noise_in(text: str) -> list[str]:
    """What of :data:`NOISE` a page's visible text shows, with a few characters of context."""
    found = []
    for what, pattern in NOISE.items():
        m = pattern.search(text)
        if m:
            found.append(f"{what}: ...{text[max(0, m.start() - 60):m.end() + 60]!r}...")
    return found


@pytest.mark.parametrize("text, clean", [
    ("Accuracy rose from 41.7% to 60.0%.", True),                        # a report's sentence
    ("/x/transformers/training_args.py:1541: FutureWarning: `gr`", False),  # a library warning
    ("Loading weights: 100%|██████████| 81/81 [00:00<00:00, 2.0it/s]", False),  # a progress bar
    ("[2026-11-21 23:36:57] [WARNING] [real_accelerator.py:213]", False),  # DeepSpeed's logger
    (f"kept at {ROOT}/book/chapters/x.ipynb", False),                    # this machine's path
])
def test_noise_detector(text, clean):
    assert (noise_in(text) == []) == clean


def test_no_page_shows_a_warning_a_progress_bar_or_a_path(server, tmp_path):
    base, html = server
    problems = []
    for page in sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html") if "_static" not in p.parts):
        dom = _chromium(tmp_path, "--dump-dom", urljoin(base, page))
        body = dom[dom.find("<body"):]
        text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", body, flags=re.S)
        text = re.sub(r"<[^>]+>", " ", text)
        problems += [f"{page}: {p}" for p in noise_in(text)]
    assert not problems, "\n".join(problems)
