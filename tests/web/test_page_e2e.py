"""End-to-end: Debian chromium driven by Playwright against uvicorn on loopback.

Uploads a generated splice, waits for the verdict, toggles heatmaps, checks what the page shows
(including that it loads nothing from another origin and logs no errors), and saves screenshots
under the test's tmp_path and test-output/web/.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "web"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("browser"),
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="/usr/bin/chromium is missing (apt-get install chromium)"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]
pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytest.importorskip("uvicorn")


class _Server:
    """uvicorn in a thread on a free loopback port."""

    def __init__(self, app):
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def _save(shot: Path, name: str) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, OUTPUT / name)


def _splice(tmp_path: Path) -> Path:
    from tests.conftest import photo
    from verity.lab.edits import make_splice

    forgery = make_splice(photo("astronaut"), photo("coffee"), np.random.default_rng(3), q_host=92, q_donor=60)
    path = tmp_path / "splice.jpg"
    path.write_bytes(forgery.data)
    return path


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _watch(page, origin: str):
    """Record requests to other origins and console errors."""
    foreign, errors = [], []
    page.on("request", lambda r: foreign.append(r.url)
            if not (r.url.startswith(origin) or r.url.startswith(("data:", "blob:"))) else None)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return foreign, errors


def test_upload_verdict_heatmaps_history(browser, tmp_path):
    from tests.api.stubs import STUB_DETECTORS, BrightnessDetector, StubPipeline
    from verity.api import create_app

    class SlowBrightness(BrightnessDetector):  # long enough to see the "Analysing" stage
        def run(self, sample):
            time.sleep(0.8)
            return super().run(sample)

    app = create_app(data_dir=tmp_path / "data", token=None, workers=1,
                     pipeline_factory=lambda: StubPipeline((SlowBrightness,) + STUB_DETECTORS[1:]))
    fixture = _splice(tmp_path)
    with _Server(app) as srv:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        foreign, errors = _watch(page, srv.url)
        page.goto(srv.url + "/")
        assert page.title().startswith("verity")
        # keyboard: within three Tab stops (skip link, home link) focus reaches a real, labelled button
        stops = []
        for _ in range(3):
            page.keyboard.press("Tab")
            stops.append(page.evaluate("document.activeElement.tagName + ':' + document.activeElement.textContent.trim()"))
        assert stops[0].startswith("A:Skip to content") and stops[-1].startswith("BUTTON:Choose a file"), stops

        page.set_input_files("#file", str(fixture))
        page.wait_for_selector("#stage-text:has-text('Analysing')", timeout=15000)
        assert page.is_visible("#progress")
        page.wait_for_selector("#result:not([hidden])", timeout=30000)

        badge = page.text_content("#verdict-badge").strip()
        assert badge in {"Authentic", "AI-generated", "Edited", "Face manipulated", "Inconclusive"}
        assert page.locator("#bars .bar").count() == 4
        assert page.text_content("#explanation").startswith("The image")
        assert "splice.jpg" in page.text_content("#file-info")
        # findings grouped by kind, in the documented order
        groups = page.locator("#findings-list .group-name").all_text_contents()
        assert groups == ["Provenance", "Metadata", "Compression", "Noise", "Faces"]
        assert "mean brightness" in page.text_content("#findings-list")
        # metadata and content-credential panels come from the findings' details
        assert "Canon" in page.text_content("#metadata")
        assert "No Content Credentials" in page.text_content("#credentials") or \
            "C2PA" in page.text_content("#credentials")
        # a face box over the image, with its score
        assert page.locator("#stage .face-box").count() == 1
        assert "Face 1" in page.text_content("#stage .face-box")

        # heatmap toggles: two detectors, switch edges on and brightness off
        toggles = page.locator("#overlay-toggles input[type=checkbox]")
        assert toggles.count() == 2
        edges = page.locator("#overlay-toggles input[data-detector=stub_edges]")
        overlay = page.locator("#stage img.overlay[data-detector=stub_edges]")
        assert not overlay.is_visible()
        edges.check()
        assert overlay.is_visible()
        page.wait_for_function(
            "() => { const o = document.querySelector('#stage img.overlay[data-detector=stub_edges]');"
            " return o.complete && o.naturalWidth > 0; }")
        bright = page.locator("#overlay-toggles input[data-detector=stub_brightness]")
        if bright.is_checked():
            bright.uncheck()
        assert not page.locator("#stage img.overlay[data-detector=stub_brightness]").is_visible()
        bright.check()  # both overlays on for the screenshot
        page.fill("#opacity", "55")
        page.dispatch_event("#opacity", "input")
        assert page.text_content("#opacity-out") == "55%"
        assert abs(float(overlay.evaluate("o => o.style.opacity")) - 0.55) < 1e-6
        # the photo really loaded
        assert page.evaluate("document.getElementById('photo').naturalWidth") == 512

        # links to the JSON and the HTML report of this analysis
        json_href = page.get_attribute("#json-link", "href")
        assert json_href.startswith("/v1/analyses/")
        assert page.get_attribute("#report-link", "href") == json_href + "/report.html"

        # history shows it; opening it from there renders the same verdict
        page.wait_for_selector("#history-list .hist-item")
        assert page.locator("#history-list .hist-item").count() == 1
        assert "splice.jpg" in page.text_content("#history-list")

        shot = tmp_path / "page-desktop.png"
        page.screenshot(path=str(shot), full_page=True)
        _save(shot, "page-desktop.png")

        # a phone-sized window: no horizontal scrolling, verdict still readable
        phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
        f2, e2 = _watch(phone, srv.url)
        phone.goto(srv.url + "/#analysis=" + json_href.rsplit("/", 1)[1])
        phone.wait_for_selector("#result:not([hidden])", timeout=15000)
        assert phone.text_content("#verdict-badge").strip() == badge
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        shot2 = tmp_path / "page-phone.png"
        phone.screenshot(path=str(shot2), full_page=True)
        _save(shot2, "page-phone.png")

        assert foreign == [] and f2 == [], foreign + f2  # nothing loaded from another origin
        assert errors == [] and e2 == [], errors + e2  # no script errors, no CSP violations


def test_unreadable_upload_shows_the_error(browser, tmp_path):
    from tests.api.stubs import StubPipeline
    from verity.api import create_app

    app = create_app(data_dir=tmp_path / "data", token=None, pipeline_factory=StubPipeline)
    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"this is a text file pretending to be a photo" * 4)
    with _Server(app) as srv:
        page = browser.new_page()
        page.goto(srv.url + "/")
        page.set_input_files("#file", str(bad))
        page.wait_for_selector("#error:not([hidden])", timeout=15000)
        msg = page.text_content("#error")
        assert "not a supported image" in msg and "not_an_image" in msg
        assert page.is_hidden("#result")
        assert page.is_enabled("#choose")


def test_page_with_the_default_pipeline(browser, tmp_path):
    """The real detectors (whatever is registered) on the splice: the page renders their verdict."""
    from verity.api import create_app

    app = create_app(data_dir=tmp_path / "data", token=None, workers=1)
    fixture = _splice(tmp_path)
    with _Server(app) as srv:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        foreign, errors = _watch(page, srv.url)
        page.goto(srv.url + "/")
        page.set_input_files("#file", str(fixture))
        page.wait_for_selector("#result:not([hidden])", timeout=240000)
        assert page.text_content("#verdict-badge").strip()
        assert page.locator("#bars .bar").count() == 4
        n_maps = page.locator("#overlay-toggles input[type=checkbox]").count()
        if n_maps:
            first = page.locator("#overlay-toggles input[type=checkbox]").first
            det = first.get_attribute("data-detector")
            first.set_checked(not first.is_checked())
            first.set_checked(True)
            assert page.locator(f"#stage img.overlay[data-detector='{det}']").is_visible()
        shot = tmp_path / "page-default-pipeline.png"
        page.screenshot(path=str(shot), full_page=True)
        _save(shot, "page-default-pipeline.png")
        assert foreign == [] and errors == [], foreign + errors


def test_page_with_a_token_uses_http_basic(browser, tmp_path):
    """With VERITY_API_TOKEN set the browser is asked for it once (Basic) and the page then works."""
    from tests.api.stubs import StubPipeline
    from verity.api import create_app

    app = create_app(data_dir=tmp_path / "data", token="browser-token", pipeline_factory=StubPipeline)
    fixture = _splice(tmp_path)
    with _Server(app) as srv:
        anon = browser.new_context()
        r = anon.request.get(srv.url + "/")
        assert r.status == 401 and r.headers["www-authenticate"].startswith("Basic")
        anon.close()
        ctx = browser.new_context(http_credentials={"username": "reporter", "password": "browser-token"})
        page = ctx.new_page()
        foreign, errors = _watch(page, srv.url)
        page.goto(srv.url + "/")
        page.set_input_files("#file", str(fixture))
        page.wait_for_selector("#result:not([hidden])", timeout=30000)
        page.wait_for_selector("#history-list .hist-item")  # the history refreshes after the result shows
        assert page.locator("#history-list .hist-item").count() == 1
        page.locator("#history-list img").scroll_into_view_if_needed()  # thumbnails load lazily
        page.wait_for_function("() => { const i = document.querySelector('#history-list img');"
                               " return i.complete && i.naturalWidth > 0; }", timeout=10000)
        assert page.evaluate("document.getElementById('photo').naturalWidth") == 512
        assert errors == [] and foreign == [], errors + foreign
        ctx.close()
