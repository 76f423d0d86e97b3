"""Browser regressions of issue 13 (Reliability): what the page shows must agree with the verdict.

* probabilities are never written 0 % or 100 %, with the same rules as ``verity.core.display``;
* while a new analysis runs the previous result is dimmed and labelled, and the progress stays on
  screen when the page is scrolled;
* on an authentic verdict no heatmap starts switched on and no finding or face is red;
* at 390 px the page does not scroll sideways, even with deeply nested generator metadata;
* an animation says that only frame 1 was analysed.

Screenshots go to test-output/web/.
"""

from __future__ import annotations

import io
import time

import numpy as np
import pytest

from tests.web.test_page_e2e import ARGS, CHROMIUM, _save, _Server, _watch

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("browser"),
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="/usr/bin/chromium is missing (apt-get install chromium)"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]
pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytest.importorskip("uvicorn")


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _png(value: int = 220, shape=(256, 320), frames: int = 1, fmt: str = "PNG") -> bytes:
    from PIL import Image

    rng = np.random.default_rng(value)
    ims = [Image.fromarray(np.clip(value + rng.normal(0, 4, (*shape, 3)), 0, 255).astype(np.uint8))
           for _ in range(frames)]
    buf = io.BytesIO()
    if frames > 1:
        ims[0].save(buf, format="GIF", save_all=True, append_images=ims[1:], duration=80)
    else:
        ims[0].save(buf, format=fmt)
    return buf.getvalue()


def _authentic_app(tmp_path, delay: float = 0.0):
    """Stub detectors whose fusion is authentic although one finding scores high with little weight
    (the brightness of a bright image) and the face scores 0.72."""
    from tests.api.stubs import STUB_DETECTORS, BrightnessDetector, StubPipeline
    from verity.api import create_app
    from verity.core.fusion import FusionModel

    class Bright(BrightnessDetector):
        def run(self, sample):
            if delay:
                time.sleep(delay)
            return super().run(sample)

    def factory():
        pipe = StubPipeline((Bright,) + STUB_DETECTORS[1:])
        pipe.fusion = FusionModel(default_weights={"stub_brightness": 0.05, "stub_exif": 3.0, "stub_faces": 0.2})
        return pipe

    return create_app(data_dir=tmp_path / "data", token=None, workers=1, pipeline_factory=factory)


def _upload(page, path, timeout=30000):
    page.set_input_files("#file", str(path))
    page.wait_for_selector("#result:not([hidden]):not(.stale)", timeout=timeout)


def test_page_formats_probabilities_like_the_core(browser, tmp_path):
    from verity.core.display import format_interval, format_probability

    app = _authentic_app(tmp_path)
    values = [0.0, 1e-7, 0.0049, 0.005, 0.0099, 0.01, 0.014, 0.015, 0.5, 0.912, 0.985, 0.99, 0.9901, 0.995,
              0.9999, 1.0]
    with _Server(app) as srv:
        page = browser.new_page()
        page.goto(srv.url + "/")
        page.wait_for_function("() => window.verityFormat !== undefined")
        got = page.evaluate("vs => vs.map(v => window.verityFormat.pct(v))", values)
        assert got == [format_probability(v) for v in values]
        assert "0%" not in got and "100%" not in got
        for lo, hi in [(0.0004, 0.97), (0.78, 0.97), (0.7036, 1.0), (0.5, 0.5), (0.0, 1.0)]:
            iv = page.evaluate("([lo, hi]) => window.verityFormat.intervalText({level: 0.9, low: lo, high: hi})", [lo, hi])
            assert iv == format_interval(lo, hi)


def test_authentic_verdict_shows_no_suspicious_signals(browser, tmp_path):
    app = _authentic_app(tmp_path)
    img = tmp_path / "bright.png"
    img.write_bytes(_png(225))
    with _Server(app) as srv:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        foreign, errors = _watch(page, srv.url)
        page.goto(srv.url + "/")
        _upload(page, img)
        assert page.text_content("#verdict-badge").strip() == "Authentic"
        bright = page.locator("#findings-list .finding", has_text="stub brightness")
        assert "0.8" in bright.text_content() or "0.9" in bright.text_content()  # a high score...
        # ...that moved nothing: its heatmap starts off and nothing on the page is red
        assert not page.locator("#overlay-toggles input[data-detector=stub_brightness]").is_checked()
        assert page.locator("#stage img.overlay:visible").count() == 0
        assert page.locator("#findings-list .finding.hot, #findings-list .count.hot, #overlay-toggles .chip.hot").count() == 0
        assert "suspicious" not in page.text_content("#findings-list").replace("suspicious, outweighed", "")
        assert "little weight" in bright.text_content()
        assert page.locator("#stage .face-box.hot, #faces .face-card.hot").count() == 0
        assert "suspicious, little weight in the verdict" in page.text_content("#faces")
        # the evidence for authenticity is decisive, and green
        assert page.locator("#findings-list .finding.cool", has_text="stub exif").count() == 1
        assert "100%" not in page.text_content("#result") and " 0%" not in page.text_content("#bars")
        shot = tmp_path / "authentic.png"
        page.screenshot(path=str(shot), full_page=True)
        _save(shot, "page-authentic-verdict.png")
        assert foreign == [] and errors == [], foreign + errors


def test_previous_result_is_dimmed_and_progress_stays_in_view(browser, tmp_path):
    app = _authentic_app(tmp_path, delay=2.5)
    first, second = tmp_path / "first.png", tmp_path / "second.png"
    first.write_bytes(_png(200))
    second.write_bytes(_png(60))
    with _Server(app) as srv:
        page = browser.new_page(viewport={"width": 1000, "height": 600})
        foreign, errors = _watch(page, srv.url)
        page.goto(srv.url + "/")
        _upload(page, first)
        assert not page.locator("#result").evaluate("r => r.classList.contains('stale')")
        page.evaluate("window.scrollTo(0, document.scrollingElement.scrollHeight)")
        page.wait_for_function("() => window.scrollY > 300")
        page.set_input_files("#file", str(second))
        page.wait_for_selector("#stage-text:has-text('Analysing')", timeout=15000)
        # the old verdict is marked as the previous one, dimmed, and its overlays are hidden
        assert page.locator("#result").evaluate("r => r.classList.contains('stale')")
        assert page.is_visible("#stale-note")
        assert float(page.locator(".verdict-card").evaluate("e => getComputedStyle(e).opacity")) < 0.5
        # the progress bar is on screen although the page is scrolled far below the upload card
        box = page.evaluate("() => { const r = document.getElementById('progress').getBoundingClientRect();"
                            " return [r.top, r.bottom, window.innerHeight]; }")
        assert 0 <= box[0] and box[1] <= box[2], box
        shot = tmp_path / "stale.png"
        page.screenshot(path=str(shot))
        _save(shot, "page-while-analysing.png")
        page.wait_for_selector("#result:not(.stale)", timeout=30000)
        assert page.is_hidden("#stale-note") and page.is_hidden("#progress")
        assert "second.png" in page.text_content("#file-info")
        assert foreign == [] and errors == [], foreign + errors


def test_phone_width_does_not_scroll_sideways(browser, tmp_path):
    """The generator-metadata table (nested parameters) pushed the page to 427 px at 390 px."""
    from tests.api.stubs import STUB_DETECTORS, StubPipeline
    from verity.api import create_app
    from verity.core.registry import Detector

    class GeneratorStub(Detector):
        name = "stub_generator"
        kind = "metadata"
        labels = ("ai_generated",)

        def run(self, sample):
            params = {"steps": 30, "sampler": "k_euler_a", "cfg_scale": 7.5, "seed": 2202748743, "type": "txt2img",
                      "model_weights": "stable-diffusion-1.4-pruned-emaonly-fp16-with-a-long-name",
                      "prompt": "japanese gardener trimming round bushes in a park"}
            hits = [{"generator": "Stable Diffusion (invoke-ai/InvokeAI)", "kind": "parameters",
                     "where": "PNG text chunk 'sd-metadata'", "summary": "Steps 30, Sampler k_euler_a, seed 2202748743",
                     "params": params, "nested": {"deeper": {"deepest_key_with_a_long_name": params}}}]
            return self.finding(0.99, ["PNG text chunk 'sd-metadata' holds a Stable Diffusion prompt"],
                                details={"hits": hits, "text_fields": 4})

    app = create_app(data_dir=tmp_path / "data", token=None, workers=1,
                     pipeline_factory=lambda: StubPipeline(STUB_DETECTORS + (GeneratorStub,)))
    img = tmp_path / "generated-image-with-a-rather-long-file-name-0000000001.png"
    img.write_bytes(_png(128, (512, 512)))
    with _Server(app) as srv:
        page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=1)
        foreign, errors = _watch(page, srv.url)
        page.goto(srv.url + "/")
        _upload(page, img)
        assert "2202748743" in page.text_content("#metadata")
        width = page.evaluate("document.scrollingElement.scrollWidth")
        shot = tmp_path / "phone.png"
        page.screenshot(path=str(shot), full_page=True)
        _save(shot, "page-phone-generator-metadata.png")
        assert width <= 390, f"the page is {width} px wide in a 390 px window"
        assert foreign == [] and errors == [], foreign + errors


def test_animation_says_only_frame_one_was_analysed(browser, tmp_path):
    app = _authentic_app(tmp_path)
    gif = tmp_path / "anim.gif"
    gif.write_bytes(_png(120, (64, 64), frames=4))
    with _Server(app) as srv:
        page = browser.new_page()
        page.goto(srv.url + "/")
        _upload(page, gif)
        assert page.is_visible("#warnings")
        assert "Only frame 1 of the 4" in page.text_content("#warnings")
