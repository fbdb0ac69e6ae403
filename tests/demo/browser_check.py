"""The demo page in a real headless browser: Debian's chromium driven by Playwright, against a running
app (`tests/demo/test_app_process.py` starts `python app.py` and calls `check_page_in_browser`).

Skipped (with the reason) when chromium or playwright is missing on a developer's machine; in CI
(CI=true) that is a failure instead, so the check cannot silently disappear. The screenshot is kept
at test-artifacts/app_enhanced.png.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import REPO_ROOT, smallest_reference_image
from PIL import Image

CHROMIUM_ENV_VAR = "CLIPLIT_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
SCREENSHOT = REPO_ROOT / "test-artifacts" / "app_enhanced.png"
VIDEO_SCREENSHOT = REPO_ROOT / "test-artifacts" / "app_video.png"
VIDEO_FRAMES = 4
VIEWPORT = {"width": 1400, "height": 1100}
PAGE_LOAD_TIMEOUT_MS = 60_000
ENHANCE_TIMEOUT_MS = 300_000  # CPU inference on a shared 2-core machine; not a performance check


def chromium_path() -> str | None:
    candidate = os.environ.get(CHROMIUM_ENV_VAR) or shutil.which("chromium") or DEFAULT_CHROMIUM
    return candidate if Path(candidate).is_file() else None


def require_browser() -> str:
    """The chromium executable; skips (locally) or fails (CI=true) naming what is missing."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright python package (pip install playwright)")
    executable = chromium_path()
    if executable is None:
        missing.append(f"chromium (apt-get install chromium, or set {CHROMIUM_ENV_VAR})")
    if missing:
        reason = "browser test needs " + " and ".join(missing)
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"{reason}; CI must install them (see .ci/run)")
        pytest.skip(reason)
    return executable


def check_page_in_browser(url: str, tmp_path: Path) -> None:
    """Upload a text file (a message), then the smallest reference photo (a preview), click Enhance, and
    download the full-resolution PNG from the page; then, in the Video tab, enhance a small clip in fast
    mode and play the result's first frame in the page's video element."""
    executable = require_browser()
    from playwright.sync_api import expect, sync_playwright

    photo = smallest_reference_image()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(url, timeout=PAGE_LOAD_TIMEOUT_MS)
            expect(page.locator("#enhance-button")).to_be_visible(timeout=PAGE_LOAD_TIMEOUT_MS)
            not_an_image = tmp_path / "notes.png"
            not_an_image.write_text("this is a text file, not an image\n")
            page.locator("#input-image input[type=file]").set_input_files(str(not_an_image))
            expect(page.get_by_text("notes.png: not an image")).to_be_visible(timeout=ENHANCE_TIMEOUT_MS)
            page.locator("#input-image").get_by_role("button", name="Remove Image").click()

            page.locator("#input-image input[type=file]").set_input_files(str(photo))
            expect(page.locator("#status")).to_contain_text("Preview", timeout=ENHANCE_TIMEOUT_MS)
            page.locator("#enhance-button").click()

            expect(page.locator("#status")).to_contain_text("Enhanced", timeout=ENHANCE_TIMEOUT_MS)
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            with Image.open(photo) as image:
                width, height = image.size
            expect(page.locator("#status")).to_contain_text(f"{width} × {height} px")
            expect(page.locator("#before-after img")).to_have_count(2)
            link = page.locator(f'#download a[href$="{photo.stem}_enhanced.png"]')
            expect(link).to_have_count(1)
            download = page.request.get(link.get_attribute("href"))
            assert download.ok
            with Image.open(io.BytesIO(download.body())) as image:
                assert (image.format, image.size) == ("PNG", (width, height))  # full resolution
            check_video_tab(page, tmp_path)
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 0 and VIDEO_SCREENSHOT.stat().st_size > 0


def check_video_tab(page, tmp_path: Path) -> None:
    from playwright.sync_api import expect
    from video_clips import write_test_clip

    clip = write_test_clip(tmp_path / "walk.mp4", frames=VIDEO_FRAMES, width=96, height=64)
    page.get_by_role("tab", name="Video").click()
    page.locator("#input-video input[type=file]").set_input_files(str(clip))
    # set_input_files only starts the upload: the clip is on the server once the input shows its player
    expect(page.locator("#input-video video")).to_have_count(1, timeout=ENHANCE_TIMEOUT_MS)
    page.locator("#video-fast input[type=checkbox]").check()
    page.locator("#enhance-video-button").click()
    expect(page.locator("#video-status")).to_contain_text(f"Enhanced {VIDEO_FRAMES} frames", timeout=ENHANCE_TIMEOUT_MS)
    expect(page.locator("#video-status")).to_contain_text("fast mode")
    player = page.locator("#output-video video")
    expect(player).to_have_attribute("src", re.compile(r"walk_enhanced\.mp4$"))
    # the browser decodes it: H.264 4:2:0 in MP4 plays in Chromium
    page.wait_for_function("document.querySelector('#output-video video').readyState >= 2", timeout=PAGE_LOAD_TIMEOUT_MS)
    page.screenshot(path=str(VIDEO_SCREENSHOT), full_page=True)
