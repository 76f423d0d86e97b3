"""The web page on a video upload: the timeline card with its SVG and the segments (chromium)."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("browser"),
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="/usr/bin/chromium is missing (apt-get install chromium)"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]
pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytest.importorskip("uvicorn")


def test_video_upload_shows_timeline_and_segments(splice_video, tmp_path):
    from playwright.sync_api import sync_playwright

    from tests.api.stubs import StubPipeline
    from tests.web.test_page_e2e import ARGS, _save, _Server, _watch
    from verity.api import create_app

    app = create_app(data_dir=tmp_path / "data", token=None, workers=1, pipeline_factory=StubPipeline)
    with _Server(app) as srv, sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = b.new_page(viewport={"width": 1280, "height": 1000})
            foreign, errors = _watch(page, srv.url)
            page.goto(srv.url + "/")
            assert "video" in page.get_attribute("#file", "accept")
            page.set_input_files("#file", str(splice_video))
            page.wait_for_selector("#result:not([hidden])", timeout=240000)
            assert page.is_visible("#timeline-card")
            page.wait_for_function("document.getElementById('timeline-img').naturalWidth > 0", timeout=15000)
            assert page.text_content("#verdict-badge").strip() == "Edited"
            assert page.text_content("#explanation").startswith("The video")
            segs = page.locator("#segments li").all_text_contents()
            assert segs and segs[0].startswith("2.0\u20134.0 s")
            assert "12 frames sampled" in page.text_content("#video-info")
            shot = tmp_path / "video.png"
            page.locator("#timeline-card").screenshot(path=str(shot))
            _save(shot, "video_timeline.png")
            assert not foreign, foreign
            assert not errors, errors
        finally:
            b.close()
