"""The web page in real headless Chromium (Debian's chromium, driven by Playwright): with an API
key set on the server, enter it on the page, synthesise (streamed and as a file), and check the
<audio> element received playable audio; run a book through the Jobs tab to its M4B."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import live_server

from fasttts.config import Settings

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]

pytestmark = [pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed"), pytest.mark.slow]

AUDIO_STATE = """() => { const a = document.getElementById('player');
  return {src: a.src, duration: a.duration, readyState: a.readyState, error: a.error && a.error.code}; }"""


def _audio_ready(page) -> dict:
    page.wait_for_function(
        "() => { const a = document.getElementById('player'); return a.src && a.readyState >= 1 && isFinite(a.duration) && a.duration > 0; }", timeout=60_000
    )
    return page.evaluate(AUDIO_STATE)


def test_page_speaks_with_api_key(settings: Settings, piper_engine):
    sync_api = pytest.importorskip("playwright.sync_api")
    with live_server(settings.model_copy(update={"api_key": "page-key"}), piper_engine) as server, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url)
            page.wait_for_function("() => document.getElementById('status').textContent.includes('API key')", timeout=20_000)
            page.fill("#api-key", "page-key")
            page.dispatch_event("#api-key", "change")
            page.wait_for_function("() => document.querySelectorAll('#speak-voice option').length > 0", timeout=20_000)
            assert page.eval_on_selector("#speak-voice", "s => s.value") == "joe"

            page.fill("#speak-text", "Hello from the browser.")
            page.click("#generate-btn")  # streaming (the default): PCM played through Web Audio, then a WAV in the player
            streamed = _audio_ready(page)
            assert streamed["error"] is None and 0.5 < streamed["duration"] < 10
            assert "audio" in page.text_content("#status")

            page.uncheck("#opt-stream")
            page.select_option("#opt-format", "mp3")
            page.evaluate("() => { document.getElementById('player').removeAttribute('src'); document.getElementById('player').load(); }")
            page.click("#generate-btn")
            whole = _audio_ready(page)
            assert whole["error"] is None and whole["src"] != streamed["src"] and 0.5 < whole["duration"] < 10

            page.select_option("#opt-pitch", "high")  # Piper has no pitch: the page shows the server's message
            page.click("#generate-btn")
            page.wait_for_function("() => document.getElementById('status').className === 'error'", timeout=20_000)
            assert "pitch" in page.text_content("#status")
            assert not errors, errors
        finally:
            browser.close()


BOOK = "# The First Chapter\n\nA short opening. It has two sentences.\n\n# The Second Chapter\n\nAnd a short ending.\n"
NO_OVERFLOW = """() => { const page = document.documentElement, main = document.querySelector('main').getBoundingClientRect();
  const out = [...document.querySelectorAll('main *')].filter(e => e.getClientRects().length && e.getBoundingClientRect().right > main.right + 1);
  return page.scrollWidth <= page.clientWidth && out.length === 0; }"""
"""Nothing sticks out sideways: no horizontal scrolling, and every visible element inside the card."""


def _artifacts(tmp_path: Path) -> Path:
    """Where screenshots go: $FASTTTS_TEST_ARTIFACTS if set (CI keeps it), else the test's tmp dir."""
    out = Path(os.environ.get("FASTTTS_TEST_ARTIFACTS") or tmp_path / "artifacts")
    out.mkdir(parents=True, exist_ok=True)
    return out


def test_jobs_tab_runs_a_book_to_an_m4b_with_api_key(settings: Settings, piper_engine, tmp_path: Path):
    """Upload a Markdown book on the Jobs tab, watch it to success, download its M4B (chapters
    intact); paste a long text and cancel it; delete a job; the page fits at 1280 and 390 px."""
    from fasttts.audio import read_chapters

    sync_api = pytest.importorskip("playwright.sync_api")
    book = tmp_path / "book.md"
    book.write_text(BOOK)
    shots = _artifacts(tmp_path)
    with live_server(settings.model_copy(update={"api_key": "jobs-key"}), piper_engine) as server, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: d.accept())
            page.goto(server.url)
            page.fill("#api-key", "jobs-key")
            page.dispatch_event("#api-key", "change")
            page.click("button.tab[data-tab=jobs]")
            page.wait_for_function("() => document.querySelectorAll('#job-voice option').length > 0", timeout=20_000)
            assert page.is_hidden("#generate-row") and page.is_visible("#job-submit-btn")

            page.set_input_files("#job-file", str(book))
            page.select_option("#job-format", "mp3")
            page.click("#job-submit-btn")
            page.wait_for_selector(".job[data-status=succeeded]", timeout=120_000)
            card = page.locator(".job[data-status=succeeded]")
            progress = card.locator(".progress-text").text_content()
            assert "100%" in progress and "segments" in progress
            done, total = map(int, progress.split(" segments")[0].split("/"))
            assert done == total > 0
            names = card.locator(".results a").evaluate_all("links => links.map(a => a.dataset.result)")
            assert {"audio.mp3", "book.m4b", "chapters/001.mp3", "chapters/002.mp3", "subtitles.srt", "subtitles.vtt"} <= set(names)
            with page.expect_download() as info:
                card.locator('a[data-result="book.m4b"]').click()
            m4b = tmp_path / "book.m4b"
            info.value.save_as(m4b)
            assert [title for title, _, _ in read_chapters(m4b)] == ["The First Chapter", "The Second Chapter"]

            page.screenshot(path=str(shots / "jobs-1280.png"), full_page=True)
            assert page.evaluate(NO_OVERFLOW)
            page.set_viewport_size({"width": 390, "height": 844})
            page.screenshot(path=str(shots / "jobs-390.png"), full_page=True)
            assert page.evaluate(NO_OVERFLOW)
            page.click("button.tab[data-tab=speak]")
            page.screenshot(path=str(shots / "speak-390.png"), full_page=True)
            assert page.evaluate(NO_OVERFLOW)
            page.click("button.tab[data-tab=jobs]")

            long_text = " ".join(f"Sentence number {i} of a text long enough to cancel." for i in range(150))
            page.fill("#job-text", long_text)
            page.click("#job-submit-btn")
            page.wait_for_selector(".job:not([data-status=succeeded]) button.cancel", timeout=20_000)
            page.click(".job:not([data-status=succeeded]) button.cancel")
            page.wait_for_selector(".job[data-status=cancelled]", timeout=30_000)

            page.locator(".job[data-status=succeeded] button.delete").click()
            page.wait_for_function("() => !document.querySelector('.job[data-status=succeeded]')", timeout=20_000)
            assert page.locator(".job").count() == 1
            assert not errors, errors
        finally:
            browser.close()
